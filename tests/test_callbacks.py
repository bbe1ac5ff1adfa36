"""Callbacks driven by a tiny fake model through the hook sequence fit() uses."""
import csv
import math

import numpy as np
import pytest

from qnn_ext import callbacks as cb
from qnn_ext.optimizers import SGD, schedules
from qnn_ext.quantizers import quantized_bits, quantized_relu


class FakeLayer:
    def __init__(self, quantizers=None):
        self._q = quantizers

    def get_quantizers(self):
        return self._q


class FakeModel:
    def __init__(self, layers=()):
        self.stop_training = False
        self.optimizer = SGD(learning_rate=0.1)
        self.layers = list(layers)
        self.weights = [np.zeros(2, np.float32)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [np.array(w) for w in ws]

    def save(self, path):
        self.saved.append(("model", path))
        open(path, "w").close()

    def save_weights(self, path):
        self.saved.append(("weights", path))
        open(path, "w").close()


def fit(model, callbacks, epoch_logs, steps=2, batch_logs=None, verbose=0):
    """Mimic Model.fit's hook order; epoch_logs[e] are the logs at the end of epoch e."""
    cl = cb.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                         epochs=len(epoch_logs), steps=steps, verbose=verbose)
    model.stop_training = False
    cl.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cl.on_epoch_begin(epoch)
        for b in range(steps):
            cl.on_train_batch_begin(b)
            bl = dict(batch_logs(epoch, b)) if batch_logs else {"loss": logs.get("loss", 0.0)}
            cl.on_train_batch_end(b, bl)
            if model.stop_training:
                break
        # the model would update its weights during the epoch
        model.weights = [np.full(2, epoch + 1, np.float32)]
        logs = dict(logs)
        cl.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cl.on_train_end()
    return model.history


def test_base_callback_hooks_and_list_dispatch():
    calls = []

    class Rec(cb.Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(("batch_end", batch))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, self.params["epochs"]))

    m = FakeModel()
    rec = Rec()
    fit(m, [rec], [{"loss": 1.0}, {"loss": 0.5}])
    assert rec.model is m
    assert calls == [("batch_end", 0), ("batch_end", 1), ("epoch_end", 0, 2),
                     ("batch_end", 0), ("batch_end", 1), ("epoch_end", 1, 2)]
    base = cb.Callback()
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
                 "on_predict_begin", "on_predict_end"):
        getattr(base, hook)({})
    for hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
                 "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
                 "on_predict_batch_end", "on_batch_begin", "on_batch_end"):
        getattr(base, hook)(0, {})


def test_history():
    m = FakeModel()
    h = fit(m, [], [{"loss": 1.0, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.75}])
    assert isinstance(h, cb.History)
    assert h.history == {"loss": [1.0, 0.5], "accuracy": [0.5, 0.75]}
    assert h.epoch == [0, 1]


def test_early_stopping_patience_and_restore(capsys):
    m = FakeModel()
    es = cb.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True, verbose=1)
    logs = [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.7, 0.1)]
    h = fit(m, [es], logs)
    assert h.epoch == [0, 1, 2]
    assert es.stopped_epoch == 2 and es.best == 0.5 and es.best_epoch == 1
    np.testing.assert_array_equal(m.weights[0], [2, 2])  # weights after epoch index 1
    out = capsys.readouterr().out
    assert "Restoring model weights from the end of the best epoch: 2." in out
    assert "Epoch 3: early stopping" in out


def test_early_stopping_mode_min_delta_baseline_start():
    es = cb.EarlyStopping(monitor="val_accuracy")
    assert es.monitor_op == np.greater
    m = FakeModel()
    es = cb.EarlyStopping(monitor="val_accuracy", min_delta=0.1, patience=1)
    h = fit(m, [es], [{"val_accuracy": a} for a in (0.5, 0.55, 0.58, 0.9)])
    assert h.epoch == [0, 1]  # 0.55 is not > 0.5 + 0.1
    m = FakeModel()
    es = cb.EarlyStopping(monitor="loss", patience=2, baseline=0.1)
    h = fit(m, [es], [{"loss": v} for v in (1.0, 0.9, 0.8, 0.7)])
    assert h.epoch == [0, 1, 2, 3]  # improving epochs never stop training
    m = FakeModel()
    es = cb.EarlyStopping(monitor="loss", patience=2, baseline=0.1)
    h = fit(m, [es], [{"loss": v} for v in (1.0, 1.1, 1.2, 1.3)])
    assert h.epoch == [0, 1]  # the baseline was never beaten, so wait was never reset
    m = FakeModel()
    es = cb.EarlyStopping(monitor="loss", patience=0, start_from_epoch=3)
    h = fit(m, [es], [{"loss": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0)])
    assert h.epoch == [0, 1, 2, 3, 4]
    m = FakeModel()
    with pytest.warns(UserWarning, match="not available. Available metrics are: loss"):
        fit(m, [cb.EarlyStopping()], [{"loss": 1.0}])


def test_model_checkpoint_formats_and_best_only(tmp_path, capsys):
    m = FakeModel()
    path = str(tmp_path / "ck" / "w.{epoch:02d}-{val_loss:.2f}.h5")
    ck = cb.ModelCheckpoint(path, save_best_only=True, save_weights_only=True, verbose=1)
    fit(m, [ck], [{"val_loss": v} for v in (0.5, 0.7, 0.25)])
    assert m.saved == [("weights", str(tmp_path / "ck" / "w.01-0.50.h5")),
                       ("weights", str(tmp_path / "ck" / "w.03-0.25.h5"))]
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 0.50000, saving model to" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    m = FakeModel()
    ck = cb.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"))
    fit(m, [ck], [{"loss": 1.0}, {"loss": 0.5}])
    assert m.saved == [("model", str(tmp_path / "m1.keras")), ("model", str(tmp_path / "m2.keras"))]
    assert cb.ModelCheckpoint("x", monitor="val_acc").monitor_op == np.greater
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        fit(FakeModel(), [cb.ModelCheckpoint(str(tmp_path / "{nope}"))], [{"loss": 1.0}])


def test_model_checkpoint_save_freq_batches(tmp_path):
    m = FakeModel()
    ck = cb.ModelCheckpoint(str(tmp_path / "b{epoch}_{batch}"), save_freq=3)
    fit(m, [ck], [{"loss": 1.0}] * 3, steps=2)
    assert [p for _, p in m.saved] == [str(tmp_path / "b2_1"), str(tmp_path / "b3_2")]
    with pytest.raises(ValueError, match="save_freq"):
        cb.ModelCheckpoint("x", save_freq="batch")


def test_learning_rate_scheduler(capsys):
    m = FakeModel()
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5 if epoch > 0 else lr

    h = fit(m, [cb.LearningRateScheduler(schedule, verbose=1)], [{"loss": 1.0}] * 3)
    assert seen == [(0, 0.1), (1, 0.1), (2, 0.05)]
    assert m.optimizer.learning_rate == pytest.approx(0.025)
    assert h.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    out = capsys.readouterr().out
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.05." in out
    m = FakeModel()
    fit(m, [cb.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))], [{"loss": 1.0}] * 2)
    assert m.optimizer.lr == pytest.approx(0.02)
    with pytest.raises(ValueError, match="should be float"):
        fit(FakeModel(), [cb.LearningRateScheduler(lambda e, lr: "x")], [{"loss": 1.0}])
    m = FakeModel()
    m.optimizer = SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(ValueError, match="schedule"):
        fit(m, [cb.LearningRateScheduler(lambda e, lr: lr)], [{"loss": 1.0}])


def test_terminate_on_nan(capsys):
    m = FakeModel()
    h = fit(m, [cb.TerminateOnNaN()], [{"loss": 1.0}, {"loss": 1.0}],
            batch_logs=lambda e, b: {"loss": float("nan") if b == 1 else 1.0})
    assert m.stop_training and h.epoch == [0]
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out


def test_csv_logger(tmp_path):
    f = tmp_path / "log.csv"
    fit(FakeModel(), [cb.CSVLogger(str(f))],
        [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.75}])
    rows = list(csv.reader(open(f, newline="")))
    assert rows == [["epoch", "acc", "loss"], ["0", "0.5", "1.0"], ["1", "0.75", "0.5"]]
    fit(FakeModel(), [cb.CSVLogger(str(f), separator=";", append=True)],
        [{"loss": 0.1, "acc": 1.0}])
    lines = open(f, newline="").read().splitlines()
    assert lines[-1] == "0;1.0;0.1" and len(lines) == 4  # no second header


def test_qnoise_scheduler_epoch_formula():
    qs = [quantized_bits(4, 0, 1), quantized_relu(4, 0)]
    m = FakeModel([FakeLayer(qs), FakeLayer(None), FakeLayer([None])])
    sched = cb.QNoiseScheduler(start=1, finish=4, freq_type="epoch", exponent=3.0, use_ste=False)
    got = []

    class Probe(cb.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            got.append(qs[0].qnoise_factor)

    fit(m, [sched, Probe()], [{"loss": 1.0}] * 6)
    expected = [0.0] + [1 - ((4 - t) / 3) ** 3 for t in (1, 2, 3, 4)] + [1.0]
    assert got == pytest.approx(expected)
    assert qs[1].qnoise_factor == pytest.approx(1.0)
    assert qs[0].use_ste is False and qs[1].use_ste is False  # set from the callback
    assert sched.calculate_qnoise_factor(2) == pytest.approx(1 - (2 / 3) ** 3)


def test_qnoise_scheduler_steps_update_freq_and_start_equals_finish():
    q = quantized_bits(4, 0, 1)
    m = FakeModel([FakeLayer([q])])
    sched = cb.QNoiseScheduler(start=2, finish=6, freq_type="step", update_freq=2,
                               initial_step_or_epoch=0, exponent=1.0)
    got = []

    class Probe(cb.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            got.append(q.qnoise_factor)

    fit(m, [sched, Probe()], [{"loss": 1.0}] * 4, steps=2)
    # steps 0..7; updates only on even steps: 0 -> 0, 2 -> 0, 4 -> 0.5, 6 -> 1
    assert got == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    q2 = quantized_bits(4, 0, 1, qnoise_factor=0.0)
    fit(FakeModel([FakeLayer([q2])]), [cb.QNoiseScheduler(3, 3)], [{"loss": 1.0}] * 4)
    assert q2.qnoise_factor == 1.0
    with pytest.raises(ValueError):
        cb.QNoiseScheduler(5, 1)
    with pytest.raises(ValueError, match="Invalid frequency type"):
        cb.QNoiseScheduler(0, 1, freq_type="batch")


def test_qnoise_scheduler_log_dir(tmp_path):
    q = quantized_bits(4, 0, 1)
    fit(FakeModel([FakeLayer([q])]), [cb.QNoiseScheduler(0, 2, log_dir=str(tmp_path))],
        [{"loss": 1.0}] * 3)
    lines = (tmp_path / "qnoise_factor.csv").read_text().splitlines()
    assert lines[0].startswith("1,") and lines[-1] == "2,1.0"


def test_progbar_non_tty_one_line_per_epoch(capsys):
    m = FakeModel()
    fit(m, [], [{"loss": 0.5, "accuracy": 0.875, "val_accuracy": 0.9}] * 2, steps=3, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("Epoch 1/2 - 0s - loss: 0.5000 - accuracy: 0.8750")
    assert out[0].endswith("val_accuracy: 0.9000")


def test_progbar_logger_tty_in_fit_shows_logged_values(capsys):
    pl = cb.ProgbarLogger(count_mode="steps")
    pl._dynamic = True
    fit(FakeModel(), [pl], [{"loss": 0.25, "val_loss": 0.5}] * 2, steps=3, verbose=1,
        batch_logs=lambda e, b: {"loss": 1.0 - 0.25 * b})
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2\n") and "Epoch 2/2\n" in out
    # the epoch-end line shows the logs as given (running averages from the model), not means
    assert "3/3 [==============================] - 0s " in out
    assert "- loss: 0.2500 - val_loss: 0.5000\n" in out


def test_progbar_tty_redraws_with_carriage_return(capsys, monkeypatch):
    import sys
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    bar = cb.Progbar(469, interval=0.0, stateful_metrics=["loss", "accuracy"])
    bar.update(12, [("loss", 0.4567), ("accuracy", 0.875)])
    bar.update(469, [("loss", 0.3), ("accuracy", 0.9)])
    out = capsys.readouterr().out
    first, last = out.split("\r")[1:3]
    assert first.startswith(" 12/469 [..............................] - ETA: ")
    assert first.rstrip().endswith("- loss: 0.4567 - accuracy: 0.8750")
    assert last.startswith("469/469 [==============================] - 0s ")
    assert "step - loss: 0.3000 - accuracy: 0.9000" in last and out.endswith("\n")
    mid = cb.Progbar(10, dynamic=True)._bar(3)
    assert mid == " 3/10 [========>.....................]"


def test_progbar_averages_non_stateful_values(capsys):
    bar = cb.Progbar(4, dynamic=False, prefix="Epoch 1/1")
    bar.update(2, [("loss", 1.0)])
    bar.update(4, [("loss", 3.0)])
    assert capsys.readouterr().out == "Epoch 1/1 - 0s - loss: 2.0000\n"
    assert cb.Progbar(4)._info(0, True).startswith(" - ")
    assert math.isclose(float(cb._format_value(5e-4)), 5e-4)


def test_progbar_logger_evaluate_and_predict(capsys):
    pl = cb.ProgbarLogger(count_mode="steps")
    pl.set_params({"verbose": 2, "epochs": 1, "steps": 2})
    pl.set_model(FakeModel())
    pl.on_test_begin()
    pl.on_test_batch_end(0, {"loss": 1.0})
    pl.on_test_batch_end(1, {"loss": 0.5})
    pl.on_test_end({"loss": 0.75})
    assert capsys.readouterr().out == "2/2 - 0s - loss: 0.7500\n"
    with pytest.raises(ValueError, match="count_mode"):
        cb.ProgbarLogger(count_mode="epochs")


def test_lambda_callback():
    seen = []
    lc = cb.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    fit(FakeModel(), [lc], [{"loss": 1.0}] * 2)
    assert seen == [0, 1]
