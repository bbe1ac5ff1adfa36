"""Keras callbacks (tf.keras 2.x behaviour) and QKeras's ``QNoiseScheduler``.

The model a callback sees needs: ``stop_training``, ``optimizer`` (with a settable
``learning_rate``/``lr``), ``get_weights()/set_weights()``, ``save(path)``/``save_weights(path)``,
``layers`` and a ``history`` attribute (set by :class:`History`).
"""
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

__all__ = ["Callback", "CallbackList", "History", "BaseLogger", "EarlyStopping",
           "ModelCheckpoint", "LearningRateScheduler", "TerminateOnNaN", "CSVLogger",
           "LambdaCallback", "Progbar", "ProgbarLogger", "QNoiseScheduler"]


class Callback:
    """Base class: every hook is a no-op; ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.validation_data = None
        self.model = None
        self.params = {}

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def on_batch_begin(self, batch, logs=None):
        """Alias of on_train_batch_begin (Keras 1 name)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of on_train_batch_end (Keras 1 name)."""

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


class CallbackList:
    """Calls a hook on every callback in order; fit builds one with ``add_history`` and
    ``add_progbar`` (the progress bar first, History last, as Keras does)."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        self.callbacks = list(callbacks) if callbacks else []
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(f"callbacks: expected Callback instances, got {type(c).__name__}")
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if add_progbar and self._progbar is None:
            self._progbar = ProgbarLogger(count_mode="steps")
            self.callbacks.insert(0, self._progbar)
        if add_history and self._history is None:
            self._history = History()
            self.callbacks.append(self._history)
        self.model = None
        self.params = {}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def set_model(self, model):
        self.model = model
        if self._history is not None:
            model.history = self._history
        for c in self.callbacks:
            c.set_model(model)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)


def _make_hook(name, with_index, target=None):
    target = target or name
    if with_index:
        def hook(self, index, logs=None):
            self._call(target, index, logs if logs is not None else {})
    else:
        def hook(self, logs=None):
            self._call(target, logs if logs is not None else {})
    hook.__name__ = name
    return hook


# as in Keras, the list's on_batch_* drive each callback's on_train_batch_* (which by default
# forward to on_batch_*), so a callback overriding either is called exactly once
CallbackList.on_batch_begin = _make_hook("on_batch_begin", True, "on_train_batch_begin")
CallbackList.on_batch_end = _make_hook("on_batch_end", True, "on_train_batch_end")
for _name in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin",
              "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
    setattr(CallbackList, _name, _make_hook(_name, True))
for _name in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end"):
    setattr(CallbackList, _name, _make_hook(_name, False))
del _name


class BaseLogger(Callback):
    """Kept for Keras 1 scripts: logs are already epoch averages here, so it does nothing."""

    def __init__(self, stateful_metrics=None):
        super().__init__()
        self.stateful_metrics = set(stateful_metrics or ())


class History(Callback):
    """Records ``logs`` after every epoch: ``history.history[key]`` lists, ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        if self.model is not None:
            self.model.history = self

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self


def _monitor_op(who, mode, monitor):
    """np.less / np.greater; "auto" guesses from the name with each callback's Keras rule."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode {mode} is unknown, fallback to auto mode.", stacklevel=3)
        mode = "auto"
    if mode == "min":
        return np.less
    if mode == "max":
        return np.greater
    if who == "EarlyStopping":
        higher = monitor.endswith(("acc", "accuracy", "auc"))
    else:
        higher = "acc" in monitor or monitor.startswith("fmeasure")
    return np.greater if higher else np.less


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs
    (counted from ``start_from_epoch``); optionally restore the best epoch's weights."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch
        self.monitor_op = _monitor_op("EarlyStopping", mode, monitor)
        if self.monitor_op == np.less:
            self.min_delta *= -1

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op == np.less else -np.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return  # an improving epoch never stops training (Keras >= 2.12)
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose > 0:
                    print("Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}", stacklevel=3)
        return value

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self.min_delta, reference))


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) every epoch or
    every ``save_freq`` batches; ``filepath`` may hold ``{epoch:02d}``, ``{batch}`` and any log
    key such as ``{val_loss:.2f}``."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", options=None,
                 initial_value_threshold=None, **kwargs):
        super().__init__()
        del options
        if "period" in kwargs:  # Keras 2.x deprecated argument: save every `period` epochs
            self.period = int(kwargs.pop("period"))
        else:
            self.period = 1
        if kwargs:
            raise TypeError(f"ModelCheckpoint: unexpected keyword argument(s) {sorted(kwargs)}")
        self.monitor = monitor
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}; expected 'epoch' or a "
                             "positive int")
        self.monitor_op = _monitor_op("ModelCheckpoint", mode, monitor)
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = np.inf if self.monitor_op == np.less else -np.inf
        self.epochs_since_last_save = 0
        self._batches_seen_since_last_saving = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches_seen_since_last_saving += 1
            if self._batches_seen_since_last_saving >= self.save_freq:
                self._batches_seen_since_last_saving = 0
                self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_since_last_save += 1
        if self.save_freq == "epoch" and self.epochs_since_last_save >= self.period:
            self.epochs_since_last_save = 0
            self._save_model(epoch, None, logs)

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" not in self.filepath:
                return self.filepath.format(epoch=epoch + 1, **(logs or {}))
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **(logs or {}))
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None

    def _write(self, filepath):
        d = os.path.dirname(filepath)
        if d:
            os.makedirs(d, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            self._write(filepath)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available, skipping.",
                          stacklevel=3)
            return
        if self.monitor_op(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {filepath}")
            self.best = current
            self._write(filepath)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")


class LearningRateScheduler(Callback):
    """At each epoch start sets ``optimizer.learning_rate = schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for one-argument functions); logs ``lr`` at epoch end."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _opt(self):
        opt = getattr(self.model, "optimizer", None)
        if opt is None or not hasattr(opt, "learning_rate"):
            raise ValueError('Optimizer must have a "lr" attribute.')
        return opt

    def on_epoch_begin(self, epoch, logs=None):
        opt = self._opt()
        cur = opt.learning_rate
        if callable(cur):
            raise ValueError("LearningRateScheduler: the optimizer's learning rate is a "
                             f"schedule ({type(cur).__name__}); use a float learning rate with "
                             "this callback")
        try:
            lr = self.schedule(epoch, float(cur))
        except TypeError:  # one-argument schedule, supported by Keras for old scripts
            lr = self.schedule(epoch)
        if isinstance(lr, np.ndarray) and lr.ndim == 0:
            lr = lr.item()
        if isinstance(lr, bool) or not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError('The output of the "schedule" function should be float.')
        lr = float(lr)
        if not math.isfinite(lr):
            raise ValueError(f'The output of the "schedule" function should be finite, got {lr}')
        opt.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = self._opt().learning_rate
            logs["lr"] = float(lr) if not callable(lr) else lr
        return None


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the log keys (sorted)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename) and os.path.getsize(self.filename) > 0:
                self.append_header = False
            mode = "a"
        else:
            mode = "w"
        self.csv_file = open(self.filename, mode, newline="")

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})

        def handle_value(k):
            if isinstance(k, np.ndarray) and k.ndim == 0:
                k = k.item()
            if isinstance(k, str):
                return k
            if isinstance(k, (list, tuple, np.ndarray)):
                return '"[%s]"' % (", ".join(map(str, k)))
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
        if getattr(self.model, "stop_training", False):
            logs = {k: logs.get(k, "NA") for k in self.keys}
        if self.writer is None:
            sep = self.sep

            class _Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=_Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, handle_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file = None
        self.writer = None


class LambdaCallback(Callback):
    """Callback built from functions: ``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch,
    logs)``, ``on_train_begin(logs)``, ... (Keras's LambdaCallback)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None,
                 on_batch_end=None, on_train_begin=None, on_train_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_begin", on_batch_begin), ("on_batch_end", on_batch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)


# ---------------------------------------------------------------- progress display

def _format_value(v):
    try:
        v = float(np.mean(v))
    except (TypeError, ValueError):
        return f" {v}"
    return f" {v:.4f}" if abs(v) > 1e-3 else f" {v:.4e}"


def _format_time(seconds):
    if seconds >= 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds >= 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def _per_unit(seconds, unit):
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """Keras-style progress bar.

    On a terminal (``sys.stdout.isatty()``) it redraws ``12/469 [==>....] - ETA: 3s - loss:
    0.4567`` in place with ``\\r``; elsewhere (logs, CI, ``verbose=2``) it prints only the final
    line of each run. Values named in ``stateful_metrics`` are shown as given; others are
    averaged over the updates, as Keras does."""

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None,
                 unit_name="step", prefix=None, dynamic=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.prefix = prefix
        self.stateful_metrics = (stateful_metrics if isinstance(stateful_metrics, _All)
                                 else set(stateful_metrics or ()))
        if dynamic is None:
            dynamic = ((hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
                       or "ipykernel" in sys.modules)
        self._dynamic_display = bool(dynamic) and verbose == 1
        self._total_width = 0
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0.0

    def _info(self, now, finalize):
        info = ""
        elapsed = now - self._start
        per_unit = elapsed / self._seen_so_far if self._seen_so_far else 0.0
        if not finalize and self.target is not None:
            info += f" - ETA: {_format_time(per_unit * (self.target - self._seen_so_far))}"
        elif finalize:
            info += f" - {_format_time(elapsed)}"
            if self.target is not None and self._dynamic_display:
                info += _per_unit(per_unit, self.unit_name)
        for k in self._values_order:
            if k in ("batch", "size"):
                continue
            v = self._values[k]
            if isinstance(v, list):
                v = v[0] / max(1, v[1])
            info += f" - {k}:{_format_value(v)}"
        return info

    def _bar(self, current):
        if self.target is None:
            return f"{current:7d}/Unknown"
        digits = int(math.log10(max(self.target, 1))) + 1
        bar = ("%" + str(digits) + "d/%d [") % (current, self.target)
        prog = float(current) / self.target if self.target else 1.0
        prog_width = int(self.width * min(prog, 1.0))
        if prog_width > 0:
            bar += "=" * (prog_width - 1)
            bar += ">" if current < self.target else "="
        bar += "." * (self.width - prog_width)
        return bar + "]"

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in (values.items() if isinstance(values, dict) else (values or [])):
            if k not in self._values_order:
                self._values_order.append(k)
            if k in self.stateful_metrics:
                self._values[k] = v
            else:
                step = max(current - self._seen_so_far, 1)
                acc = self._values.get(k)
                if not isinstance(acc, list):
                    acc = [0.0, 0]
                acc[0] += float(np.mean(v)) * step
                acc[1] += step
                self._values[k] = acc
        self._seen_so_far = current
        now = time.time()
        if self.verbose == 0:
            return
        if not finalize and now - self._last_update < self.interval:
            return
        self._last_update = now
        if self._dynamic_display:
            line = self._bar(current) + self._info(now, finalize)
            pad = max(0, self._total_width - len(line))
            self._total_width = len(line)
            sys.stdout.write("\r" + line + " " * pad + ("\n" if finalize else ""))
            sys.stdout.flush()
        elif finalize:
            head = self.prefix if self.prefix else self._bar(current).split(" [")[0]
            sys.stdout.write(head + self._info(now, True) + "\n")
            sys.stdout.flush()

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)


class ProgbarLogger(Callback):
    """Prints training progress: the bar on a terminal with ``verbose=1``, otherwise one line
    per epoch ``Epoch 1/5 - 12s - loss: ... - val_accuracy: ...``. Uses
    ``params = {"epochs", "steps", "verbose"}`` set by fit."""

    def __init__(self, count_mode="samples", stateful_metrics=None):
        super().__init__()
        if count_mode not in ("samples", "steps"):
            raise ValueError(f"Unknown `count_mode`: {count_mode}. Expected values are "
                             "['samples', 'steps']")
        self.use_steps = count_mode == "steps"
        self.stateful_metrics = set(stateful_metrics or ())
        self.progbar = None
        self.seen = 0
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False
        self._dynamic = None

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params.get("verbose", 1)
        if self.verbose == "auto":
            self.verbose = 1
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps") if self.use_steps else params.get(
            "samples", params.get("steps"))

    def _dynamic_ok(self):
        if self._dynamic is not None:
            return self._dynamic
        return (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or \
            "ipykernel" in sys.modules

    def _new_bar(self, prefix=None):
        self.seen = 0
        dynamic = self.verbose == 1 and self._dynamic_ok()
        # logs from fit are running averages already: show them as they are
        self.progbar = Progbar(self.target, verbose=self.verbose, stateful_metrics=_All(),
                               unit_name="step" if self.use_steps else "sample",
                               prefix=prefix, dynamic=dynamic)

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        if not self.verbose:
            return
        if self.verbose == 1 and self._dynamic_ok():
            if self.epochs > 1:
                print(f"Epoch {epoch + 1}/{self.epochs}")
            self._new_bar()
        else:
            self._new_bar(prefix=f"Epoch {epoch + 1}/{self.epochs}")

    def _batch_update(self, batch, logs):
        if self.progbar is None:
            return
        logs = dict(logs or {})
        if self.use_steps:
            self.seen = batch + 1
        else:
            self.seen += int(logs.get("size", logs.get("num_samples", 1)))
        self.progbar.update(self.seen, [(k, v) for k, v in logs.items()
                                        if k not in ("batch", "size", "num_samples")],
                            finalize=False)

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose:
            self._batch_update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose and self.progbar is not None:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)

    def on_train_end(self, logs=None):
        self._called_in_fit = False

    def on_test_begin(self, logs=None):
        if not self._called_in_fit and self.verbose:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit and self.verbose:
            self._batch_update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit and self.verbose and self.progbar is not None:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        if self.verbose:
            self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        if self.verbose:
            self._batch_update(batch, None)

    def on_predict_end(self, logs=None):
        if self.verbose and self.progbar is not None:
            self.progbar.update(self.seen, None, finalize=True)


class _All:
    """A set that contains every key (all logged values are stateful)."""

    def __contains__(self, item):
        return True

    def __iter__(self):
        return iter(())


# ---------------------------------------------------------------- QKeras

class QNoiseScheduler(Callback):
    """QKeras's gradual quantization: sets every model quantizer's ``qnoise_factor`` to

    ``0`` before ``start``; ``1 - ((finish - t) / (finish - start)) ** exponent`` for
    ``start <= t <= finish`` (``start != finish``); ``1`` afterwards,

    with ``t = initial_step_or_epoch + number of updates seen`` counted per epoch
    (``freq_type="epoch"``, at epoch begin) or per training batch (``"step"``, at batch begin),
    changed only when ``t % update_freq == 0``. Quantizers are those returned by each layer's
    ``get_quantizers()`` (or its ``quantizers``/``quantizer`` attribute) that have a
    ``qnoise_factor``; on first use each gets ``use_ste`` from this callback and
    ``use_variables = True`` as QKeras does. ``log_dir`` appends ``epoch,qnoise_factor`` lines to
    ``log_dir/qnoise_factor.csv`` at epoch end (QKeras writes a TensorBoard scalar)."""

    def __init__(self, start, finish, freq_type="epoch", update_freq=1, initial_step_or_epoch=0,
                 exponent=3.0, use_ste=True, log_dir=None):
        super().__init__()
        if start > finish:
            raise ValueError(f"QNoiseScheduler: start {start} must not be greater than finish "
                             f"{finish}")
        supported = ["step", "epoch"]
        if freq_type not in supported:
            raise ValueError(f"Invalid frequency type {freq_type}. only {supported} are "
                             "supported.")
        if isinstance(update_freq, bool) or not isinstance(update_freq, (int, np.integer)) \
                or update_freq < 1:
            raise ValueError(f"QNoiseScheduler: update_freq must be a positive int, got "
                             f"{update_freq!r}")
        self.start = start
        self.finish = finish
        self.freq_type = freq_type
        self.update_freq = int(update_freq)
        self.initial_step_or_epoch = initial_step_or_epoch
        self.exponent = exponent
        self.qnoise_factor = None
        self.use_ste = use_ste
        self.quantizers = None
        self.log_dir = log_dir
        self.num_iters = 0

    def calculate_qnoise_factor(self, freq):
        if freq < self.start:
            qf = 0.0
        elif freq <= self.finish and self.start != self.finish:
            val = float(self.finish - freq) / float(self.finish - self.start)
            qf = 1.0 - float(np.power(val, self.exponent))
        else:
            qf = 1.0
        self.qnoise_factor = qf
        return qf

    def get_quantizers(self, model):
        found, seen = [], set()
        for layer in getattr(model, "layers", []):
            qs = []
            if hasattr(layer, "get_quantizers"):
                qs = list(layer.get_quantizers() or [])
            elif hasattr(layer, "quantizers"):
                qs = list(layer.quantizers or [])
            if hasattr(layer, "quantizer"):
                qs.append(layer.quantizer)
            for q in qs:
                if q is not None and hasattr(q, "qnoise_factor") and id(q) not in seen:
                    seen.add(id(q))
                    found.append(q)
        return found

    def set_quantizers(self):
        for q in self.quantizers:
            for attr, value in (("use_ste", self.use_ste), ("use_variables", True)):
                if hasattr(q, attr):
                    try:
                        setattr(q, attr, value)
                    except AttributeError:  # read-only on some quantizers (quantized_linear)
                        pass

    def update_qnoise_factor(self, freq):
        if freq % self.update_freq != 0:
            self.num_iters += 1
            return
        if not self.quantizers:
            self.quantizers = self.get_quantizers(self.model)
            self.set_quantizers()
        qf = self.calculate_qnoise_factor(freq)
        for q in self.quantizers:
            q.update_qnoise_factor(qf)
        self.num_iters += 1

    def on_epoch_begin(self, epoch, logs=None):
        if self.freq_type == "epoch":
            self.update_qnoise_factor(self.initial_step_or_epoch + self.num_iters)

    def on_epoch_end(self, epoch, logs=None):
        if self.log_dir and self.qnoise_factor:
            os.makedirs(self.log_dir, exist_ok=True)
            with open(os.path.join(self.log_dir, "qnoise_factor.csv"), "a") as f:
                f.write(f"{epoch},{self.qnoise_factor}\n")

    def on_train_batch_begin(self, batch, logs=None):
        if self.freq_type == "step":
            self.update_qnoise_factor(self.initial_step_or_epoch + self.num_iters)
