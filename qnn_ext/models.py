"""Models: the layer graph (functional and Sequential), compile/fit/evaluate/predict, summary.

Forward runs the layers in topological order; backward runs them in reverse, summing the
gradients of a tensor that feeds several layers (architecture.md "Autograd")."""
import numpy as np

from . import backend
from .layers.base import F32, InputLayer, KerasTensor, Layer, _shape_str

__all__ = ["Model", "Sequential", "load_model", "model_from_json"]


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _layer_refs(refs, where):
    """The layer names of a Keras node list ``[[name, node_index, tensor_index], ...]``. Checked:
    a string in place of the list would otherwise be read one character per "layer"."""
    if not isinstance(refs, list) or not refs:
        raise ValueError(f"Model.from_config: {where} must be a non-empty list of "
                         f"[layer_name, node_index, tensor_index], got {refs!r:.80}")
    for r in refs:
        if not isinstance(r, (list, tuple)) or not r or not isinstance(r[0], str):
            raise ValueError(f"Model.from_config: {where} must hold [layer_name, node_index, "
                             f"tensor_index] lists, got {r!r:.80}")
    return [r[0] for r in refs]


class Model(Layer):
    """``Model(inputs, outputs)``: a graph of layers from Input tensors to output tensors."""

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.stop_training = False
        self.optimizer = self.loss = self._fused = None
        self._fused_pending = False
        self.compiled_metrics = []
        self.history = None
        self._graph = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError(f"Model '{self.name}': give both inputs and outputs")
            # tf.keras unwraps a one-element output list: predict() then returns an array
            single = not isinstance(outputs, (list, tuple)) or len(outputs) == 1
            self._init_graph(_as_list(inputs), _as_list(outputs), single_output=single)

    # ------------------------------------------------------------------ graph
    def _init_graph(self, inputs, outputs, single_output=True):
        for t in inputs + outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model '{self.name}': inputs and outputs must be tensors from "
                                f"Input(...) and layer calls, got {type(t).__name__}")
        for t in inputs:
            if not isinstance(t.layer, InputLayer):
                raise ValueError(f"Model '{self.name}': inputs must come from Input(...), got a "
                                 f"tensor from layer '{t.layer.name}'")
        order, seen = [], set()

        def visit(t):
            if id(t) in seen:
                return
            seen.add(id(t))
            for u in t.inputs:
                visit(u)
            order.append(t)

        for t in outputs:
            visit(t)
        for t in order:
            if isinstance(t.layer, InputLayer) and not any(t is i for i in inputs):
                raise ValueError(f"Model '{self.name}': output depends on Input '{t.layer.name}' "
                                 f"which is not among the model inputs")
        calls = [t for t in order if not isinstance(t.layer, InputLayer)]
        used = {}
        for t in calls:
            if id(t.layer) in used:
                raise NotImplementedError(
                    f"Model '{self.name}': layer '{t.layer.name}' is called more than once; "
                    f"shared layers are not supported yet")
            used[id(t.layer)] = t
        self._inputs, self._outputs, self._order = inputs, outputs, calls
        self._single_output = single_output
        self._layers = [t.layer for t in order if isinstance(t.layer, InputLayer)] + [t.layer for t in calls]
        self._graph = True
        self.built = True

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def layers(self):
        return list(self._layers) if self._graph else []

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"Model '{self.name}': no layer named {name!r} "
                         f"(layers: {', '.join(l.name for l in self.layers)})")

    @property
    def weights(self):
        out, seen = [], set()
        for layer in self.layers:
            for v in layer.weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def trainable_weights(self):
        return [v for layer in self.layers for v in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [v for layer in self.layers for v in layer.non_trainable_weights]

    def get_weights(self):
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        ws = self.weights
        if len(weights) != len(ws):
            raise ValueError(f"Model '{self.name}': set_weights expects {len(ws)} arrays, got {len(weights)}")
        for v, w in zip(ws, weights):
            if np.shape(w) != v.shape:
                raise ValueError(f"Model '{self.name}': weight '{v.name}' has shape {v.shape}, "
                                 f"set_weights got {np.shape(w)}")
        for v, w in zip(ws, weights):
            v.assign(w)

    def count_params(self):
        return int(sum(v.value.size for v in self.weights))

    # ------------------------------------------------------------------ running
    def _ensure_graph(self, x):
        if not self._graph:
            raise ValueError(f"Model '{self.name}': the model has no layers/graph yet")

    def _check_inputs(self, xs):
        if len(xs) != len(self._inputs):
            raise ValueError(f"Model '{self.name}': expected {len(self._inputs)} input array(s), got {len(xs)}")
        out = []
        for t, x in zip(self._inputs, xs):
            a = np.asarray(x)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"Model '{self.name}': input '{t.layer.name}' must be numeric, got dtype {a.dtype}")
            want = t.shape
            if a.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], a.shape[1:])):
                raise ValueError(f"Model '{self.name}': input '{t.layer.name}' must have shape "
                                 f"{_shape_str(want)}, got {a.shape}")
            out.append(np.ascontiguousarray(a, dtype=F32))
        return out

    def _only_user_fn(self):
        """only_user(node, types): the node's one consumer when it has exactly one, of one of
        `types`, fed by nothing else, and the node is not a model output; else None. The
        fusions below run such a chain of layers as one kernel."""
        uses = {}
        for t in self._order:
            for u in t.inputs:
                uses.setdefault(id(u), []).append(t)
        outs = {id(t) for t in self._outputs}

        def only_user(t, types):
            users = uses.get(id(t), [])
            if (len(users) == 1 and id(t) not in outs and type(users[0].layer) in types
                    and len(users[0].inputs) == 1):
                return users[0]
            return None
        return only_user

    def _bn_act_pairs(self):
        """{id(batch-norm output): activation node} for every BatchNormalization whose output
        feeds exactly one Activation/QActivation and nothing else: in training, the pair runs
        as one fused kernel (BatchNormalization.call_fused). Returns (pairs, pools): pools maps
        the batch norms whose activation in turn feeds only a MaxPooling2D with strides equal to
        its pool size to that pool node; the three run as one kernel when the pool needs no
        padding (BatchNormalization.call_fused_maxpool)."""
        from .layers.core import Activation, QActivation
        from .layers.normalization import BatchNormalization
        from .layers.pooling import MaxPooling2D
        if getattr(self, "_bn_act_cache", None) is not None and self._bn_act_cache[0] is self._order:
            return self._bn_act_cache[1]
        only_user = self._only_user_fn()
        pairs, pools = {}, {}
        for t in self._order:
            a = only_user(t, (Activation, QActivation))
            if type(t.layer) is BatchNormalization and a is not None:
                pairs[id(t)] = a
                # ... and the activation feeds only a max pool whose windows tile its input
                p = only_user(a, (MaxPooling2D,))
                if p is not None and p.layer.strides == p.layer.pool_size:
                    pools[id(t)] = p
        self._bn_act_cache = (self._order, (pairs, pools))
        return pairs, pools

    def _weight_act_pairs(self):
        """{id(weight layer output): (batch-norm node or None, activation node or None)} for
        every Dense/convolution without an activation of its own whose output feeds exactly one
        BatchNormalization and/or Activation/QActivation layer (each feeding only the next):
        the activation can run in the layer's GEMM epilogue, and at inference the batch norm
        too (call_fused)."""
        from .layers.core import Activation, QActivation
        from .layers.normalization import BatchNormalization
        cache = getattr(self, "_wact_cache", None)
        if cache is not None and cache[0] is self._order:
            return cache[1]
        only_user = self._only_user_fn()
        pairs = {}
        for t in self._order:
            if getattr(t.layer, "_epilogue_shape", None) is None or len(t.inputs) != 1:
                continue
            bn = only_user(t, (BatchNormalization,))
            act = only_user(bn if bn is not None else t, (Activation, QActivation))
            if bn is not None or act is not None:
                pairs[id(t)] = (bn, act)
        self._wact_cache = (self._order, pairs)
        return pairs

    @staticmethod
    def _call_fused_weight(t, x, pair, training):
        """Runs weight layer t with what of its (batch norm, activation) successors its epilogue
        can take: both (inference), the activation alone, or the batch norm alone (inference).
        Returns (output, fused successor nodes), or (None, []) when nothing could be fused."""
        bn, act = pair
        if bn is not None and training:  # training batch norm needs batch statistics first
            return None, []
        tries = []
        if bn is not None and act is not None:
            tries.append((bn, act))
        if bn is None and act is not None:
            tries.append((None, act))
        if bn is not None:
            tries.append((bn, None))
        for b, a in tries:
            y = t.layer.call_fused(x, activation=a.layer.activation if a is not None else None,
                                   bn=b.layer if b is not None else None, training=training)
            if y is not None:
                return y, [d for d in (b, a) if d is not None]
        return None, []

    def call(self, inputs, training=False):
        xs = self._check_inputs(_as_list(inputs))
        values = {id(t): x for t, x in zip(self._inputs, xs)}
        pairs, pools = self._bn_act_pairs() if training else ({}, {})
        wpairs = self._weight_act_pairs()
        self._fused_acts = fused = set()
        for t in self._order:
            if id(t) in fused:  # computed with its batch norm or weight layer
                continue
            ins = [values[id(u)] for u in t.inputs]
            if id(t) in wpairs:
                y, done = self._call_fused_weight(t, ins[0], wpairs[id(t)], training)
                if y is not None:
                    for d in [t] + done:
                        values[id(d)] = y
                    fused.update(id(d) for d in done)
                    continue
            if id(t) in pools:
                a, p = pairs[id(t)], pools[id(t)]
                x = ins[0]
                y = None
                if x.ndim == 4 and p.layer._pads(x.shape[1], x.shape[2]) == (0, 0, 0, 0):
                    y = t.layer.call_fused_maxpool(x, a.layer.activation, p.layer.pool_size)
                if y is not None:
                    values[id(p)] = y
                    fused.update((id(a), id(p)))
                    continue
            if id(t) in pairs:
                a = pairs[id(t)]
                y = t.layer.call_fused(ins[0], a.layer.activation)
                if y is not None:
                    values[id(t)] = values[id(a)] = y
                    fused.add(id(a))
                    continue
            values[id(t)] = t.layer.call(ins if len(ins) > 1 else ins[0], training=training)
        outs = [values[id(t)] for t in self._outputs]
        return outs[0] if self._single_output else outs

    def __call__(self, inputs, training=None, **kwargs):
        if isinstance(inputs, KerasTensor) or (isinstance(inputs, (list, tuple)) and inputs
                                               and isinstance(inputs[0], KerasTensor)):
            raise NotImplementedError(f"Model '{self.name}': using a model as a layer of another "
                                      f"model is not supported yet")
        return self.call(inputs, training=bool(training))

    def backward(self, grads):
        gs = {id(t): np.ascontiguousarray(g, dtype=F32)
              for t, g in zip(self._outputs, _as_list(grads) if not self._single_output else [grads])}
        for t in reversed(self._order):
            g = gs.pop(id(t), None)
            if g is None:
                g = np.zeros((1,), F32)  # output unused by the loss: no gradient flows
                continue
            if id(t) in getattr(self, "_fused_acts", ()):  # its input layer applies act' (and pool')
                t.layer.grads = []
                gs[id(t.inputs[0])] = g
                continue
            # a layer fed only by model inputs need not compute its input gradient
            t.layer._need_input_grad = not all(isinstance(u.layer, InputLayer) for u in t.inputs)
            dins = t.layer.backward(g)
            t.layer._need_input_grad = True
            if dins is None:
                continue
            # kernels take C-contiguous float32 (a split or a view may be neither)
            dins = [np.ascontiguousarray(d, dtype=F32)
                    for d in (dins if isinstance(dins, list) else [dins])]
            for u, d in zip(t.inputs, dins):
                if id(u) in gs:
                    gs[id(u)] = gs[id(u)] + d
                else:
                    gs[id(u)] = d
        return [gs.get(id(t)) for t in self._inputs]

    def _grads(self):
        out = []
        for layer in self.layers:
            tw = layer.trainable_weights
            if tw:
                if len(layer.grads) != len(tw):
                    raise RuntimeError(f"layer '{layer.name}' produced {len(layer.grads)} gradients "
                                       f"for {len(tw)} trainable weights")
                out.extend(zip(layer.grads, tw))
        return out

    # ------------------------------------------------------------------ compile / fit
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, run_eagerly=None, steps_per_execution=None, **kwargs):
        from . import losses, metrics as metrics_mod, optimizers
        if kwargs:
            raise TypeError(f"Model '{self.name}': compile got unexpected argument(s): {', '.join(kwargs)}")
        self.optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError(f"Model '{self.name}': compile needs a loss")
        self.loss = losses.get(loss)
        self.compiled_metrics = [metrics_mod.get(m, loss=self.loss) for m in (metrics or [])]
        self._loss_name = loss if isinstance(loss, str) else getattr(self.loss, "name", "loss")
        self._fused, self._fused_pending = None, True

    def _resolve_fused(self):
        if self._fused_pending and self._graph:
            self._fused, self._fused_pending = self._fused_softmax_layer(), False

    def _fused_softmax_layer(self):
        """The output layer whose softmax feeds a (sparse) categorical cross-entropy: like
        tf.keras, the loss and its gradient are then computed from the logits (one C kernel,
        log-sum-exp, no probability clipping)."""
        from . import activations, losses
        if not self._graph or not self._single_output:
            return None
        layer = self._outputs[0].layer
        if getattr(layer, "activation", None) is not activations.lookup("softmax"):
            return None
        ok = (isinstance(self.loss, losses.SparseCategoricalCrossentropy)
              or (isinstance(self.loss, losses.CategoricalCrossentropy)
                  and getattr(self.loss, "label_smoothing", 0) == 0))
        if not ok or self.loss.from_logits or getattr(self.loss, "reduction", "auto") not in (
                "auto", "sum_over_batch_size"):
            return None
        return layer

    def _fused_loss(self, y):
        """(mean loss, d loss/d logits) from the softmax layer's cached logits."""
        from . import _core, losses
        layer = self._fused
        logits = layer._act_cache[1]
        k = logits.shape[-1]
        l2 = np.ascontiguousarray(logits.reshape(-1, k))
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            yt = np.asarray(y)
            if yt.ndim == logits.ndim and yt.shape[-1] == 1:
                yt = yt[..., 0]
            if yt.dtype.kind not in "iub":
                if yt.dtype.kind != "f" or not np.all(yt == np.floor(yt)):
                    raise ValueError(f"{self.loss.name}: labels must be integer class indices, "
                                     f"got dtype {yt.dtype}")
            labels = np.ascontiguousarray(yt.reshape(-1), dtype=np.int64)
        else:
            labels = np.ascontiguousarray(np.asarray(y, dtype=F32).reshape(-1, k))
        if labels.shape[0] != l2.shape[0]:
            raise ValueError(f"{self.loss.name}: {labels.shape[0]} labels for {l2.shape[0]} predictions")
        loss_vec, dlogits = _core.softmax_cross_entropy(layer.name, l2, labels)
        n = l2.shape[0]
        return float(loss_vec.mean(dtype=np.float64)), (dlogits / F32(n)).reshape(logits.shape)

    def _check_compiled(self):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"Model '{self.name}': call compile(optimizer, loss) before training "
                               f"or evaluating")

    def _regularization(self):
        total, grads = 0.0, {}
        for layer in self.layers:
            for v, r in layer.regularization_losses():
                total += float(r(v.value))
                grads[id(v)] = r.gradient(v.value)
        return total, grads

    def _train_step(self, x, y):
        prev = backend.learning_phase()
        backend.set_learning_phase(1)  # QKeras: stochastic quantizers follow the learning phase
        try:
            y_pred = self.call(x, training=True)
            self._resolve_fused()
            reg, reg_grads = self._regularization()
            if self._fused is not None:
                loss, dlogits = self._fused_loss(y)
                self._fused._preact_grad = True
                try:
                    self.backward(dlogits)
                finally:
                    self._fused._preact_grad = False
            else:
                loss = float(self.loss(y, y_pred))
                self.backward(self.loss.gradient(y, y_pred))
        finally:
            backend.set_learning_phase(prev)
        gv = self._grads()
        if reg_grads:
            gv = [(g + reg_grads[id(v)] if id(v) in reg_grads else g, v) for g, v in gv]
        self.optimizer.apply_gradients(gv)
        for m in self.compiled_metrics:
            m.update_state(y, y_pred)
        return loss + reg, y_pred

    def train_on_batch(self, x, y, reset_metrics=True, return_dict=False):
        self._check_compiled()
        if reset_metrics:
            for m in self.compiled_metrics:
                m.reset_state()
        xs, ys = self._prepare(x, y)
        loss, _ = self._train_step(xs if len(xs) > 1 else xs[0], ys)
        return self._results(loss, return_dict)

    def _results(self, loss, return_dict):
        logs = {"loss": loss}
        logs.update({m.name: float(m.result()) for m in self.compiled_metrics})
        if return_dict:
            return logs
        return loss if not self.compiled_metrics else list(logs.values())

    def _prepare(self, x, y=None):
        xs = self._check_inputs(_as_list(x))
        n = xs[0].shape[0]
        for a in xs[1:]:
            if a.shape[0] != n:
                raise ValueError(f"Model '{self.name}': all inputs must have the same number of samples")
        if y is None:
            return xs, None
        y = np.asarray(y)
        if y.shape[0] != n:
            raise ValueError(f"Model '{self.name}': x has {n} samples but y has {y.shape[0]}")
        return xs, y

    @staticmethod
    def _take(xs, idx):
        return [x[idx] for x in xs]

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, **kwargs):
        from . import callbacks as cbs
        if kwargs:
            raise TypeError(f"Model '{self.name}': fit got unexpected argument(s): {', '.join(kwargs)}")
        if class_weight is not None or sample_weight is not None:
            raise NotImplementedError("fit: class_weight/sample_weight are not supported yet")
        self._check_compiled()
        xs, y = self._prepare(x, y)
        if y is None:
            raise ValueError(f"Model '{self.name}': fit needs targets y")
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ValueError(f"Model '{self.name}': batch_size must be >= 1, got {batch_size}")
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"Model '{self.name}': validation_split must be in (0, 1), got {validation_split}")
            split = int(xs[0].shape[0] * (1.0 - validation_split))
            validation_data = ([a[split:] for a in xs], y[split:])
            xs, y = [a[:split] for a in xs], y[:split]
        if validation_data is not None:
            vx, vy = validation_data[0], validation_data[1]
        n = xs[0].shape[0]
        steps = -(-n // batch_size) if steps_per_epoch is None else int(steps_per_epoch)
        if verbose == "auto":
            verbose = 1
        self.history = cbs.History()
        cb_list = list(callbacks or [])
        cl = cbs.CallbackList(cb_list + [self.history], add_progbar=verbose != 0, model=self,
                              verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        cl.on_train_begin()
        rng = np.random.Generator(np.random.PCG64(backend.next_random_key()))
        for epoch in range(initial_epoch, epochs):
            for m in self.compiled_metrics:
                m.reset_state()
            cl.on_epoch_begin(epoch)
            order = rng.permutation(n) if shuffle else np.arange(n)
            total, count, logs = 0.0, 0, {}
            for step in range(steps):
                idx = order[(step * batch_size) % n:][:batch_size]
                cl.on_train_batch_begin(step)
                bx, by = self._take(xs, idx), y[idx]
                loss, _ = self._train_step(bx if len(bx) > 1 else bx[0], by)
                total += loss * len(idx)
                count += len(idx)
                logs = {"loss": total / count}
                logs.update({m.name: float(m.result()) for m in self.compiled_metrics})
                cl.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if validation_data is not None and (epoch + 1) % validation_freq == 0:
                vals = self.evaluate(vx, vy, batch_size=validation_batch_size or batch_size,
                                     verbose=0, return_dict=True)
                epoch_logs.update({"val_" + k: v for k, v in vals.items()})
            cl.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cl.on_train_end()
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", steps=None, callbacks=None,
                 return_dict=False, **kwargs):
        self._check_compiled()
        xs, y = self._prepare(x, y)
        if y is None:
            raise ValueError(f"Model '{self.name}': evaluate needs targets y")
        batch_size = 32 if batch_size is None else int(batch_size)
        metrics = [type(m).from_config(m.get_config()) for m in self.compiled_metrics]
        n, total = xs[0].shape[0], 0.0
        for s in range(0, n, batch_size):
            bx = [a[s:s + batch_size] for a in xs]
            yp = self.call(bx if len(bx) > 1 else bx[0], training=False)
            self._resolve_fused()
            if self._fused is not None:
                total += self._fused_loss(y[s:s + batch_size])[0] * len(bx[0])
            else:
                total += float(self.loss(y[s:s + batch_size], yp)) * len(bx[0])
            for m in metrics:
                m.update_state(y[s:s + batch_size], yp)
        logs = {"loss": total / max(n, 1)}
        logs.update({m.name: float(m.result()) for m in metrics})
        if verbose not in (0, "auto"):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        return logs["loss"] if not metrics else list(logs.values())

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        self._ensure_graph(x)
        xs, _ = self._prepare(x)
        batch_size = 32 if batch_size is None else int(batch_size)
        n, outs = xs[0].shape[0], []
        for s in range(0, n, batch_size):
            bx = [a[s:s + batch_size] for a in xs]
            outs.append(_as_list(self.call(bx if len(bx) > 1 else bx[0], training=False)))
        if not outs:
            raise ValueError(f"Model '{self.name}': predict got 0 samples")
        cat = [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
        return cat[0] if self._single_output else cat

    def predict_on_batch(self, x):
        return self.call(x, training=False)

    def test_on_batch(self, x, y, return_dict=False):
        return self.evaluate(x, y, batch_size=len(np.asarray(_as_list(x)[0])), verbose=0,
                             return_dict=return_dict)

    # ------------------------------------------------------------------ summary / config
    def summary(self, line_length=None, print_fn=None):
        print_fn = print_fn or print
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            t = getattr(layer, "_output_tensor", None)
            shape = _shape_str(t.shape) if t is not None else ""
            for tt in getattr(self, "_order", []):
                if tt.layer is layer:
                    shape = _shape_str(tt.shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, str(layer.count_params())))
            if hasattr(layer, "get_quantizers"):
                qs = [str(q) for q in layer.get_quantizers() if q is not None]
                act = getattr(layer, "activation", None)
                if act is not None and hasattr(act, "bits") and str(act) not in qs:
                    qs.append(str(act))
                for q in qs:
                    rows.append(("    " + q, "", ""))
        w = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
        width = sum(w)
        print_fn(f'Model: "{self.name}"')
        print_fn("_" * width)
        print_fn("".join(r.ljust(w[i]) for i, r in enumerate(rows[0])))
        print_fn("=" * width)
        for r in rows[1:]:
            print_fn("".join(c.ljust(w[i]) for i, c in enumerate(r)))
        print_fn("=" * width)
        tr = int(sum(v.value.size for v in self.trainable_weights))
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {tr:,}")
        print_fn(f"Non-trainable params: {total - tr:,}")
        print_fn("_" * width)

    def get_config(self):
        """Keras's functional config: every layer with the layers (and output index) feeding it;
        the model's input and output layers."""
        def ref(t):
            return [t.layer.name, 0, t.index]
        layers = []
        for layer in self.layers:
            t = next((tt for tt in self._order if tt.layer is layer), None)
            inbound = [[ref(u) for u in t.inputs]] if t is not None else []
            layers.append({"class_name": type(layer).__name__, "name": layer.name,
                           "config": layer.get_config(), "inbound_nodes": inbound})
        return {"name": self.name, "layers": layers,
                "input_layers": [ref(t) for t in self._inputs],
                "output_layers": [ref(t) for t in self._outputs]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild a functional model from get_config(); only registered layer classes (and
        custom_objects) are created, nothing in the config is imported or evaluated."""
        from .layers import deserialize
        from .layers.base import Input
        if not isinstance(config, dict) or "layers" not in config:
            raise ValueError("Model.from_config: expected a dict with 'layers', 'input_layers' and "
                             "'output_layers'")
        tensors = {}
        for spec in config["layers"]:
            name = spec.get("name") or spec.get("config", {}).get("name")
            if spec.get("class_name") == "InputLayer":
                bis = spec["config"]["batch_input_shape"]
                tensors[name] = Input(shape=tuple(bis[1:]), batch_size=bis[0], name=name)
                continue
            layer = deserialize(spec, custom_objects)
            nodes = spec.get("inbound_nodes") or []
            if len(nodes) != 1:
                raise ValueError(f"Model.from_config: layer '{name}' must have exactly one "
                                 f"inbound node, got {len(nodes)}")
            try:
                ins = [tensors[r] for r in _layer_refs(nodes[0], f"layer '{name}' inbound node")]
            except KeyError as e:
                raise ValueError(f"Model.from_config: layer '{name}' is fed by unknown layer "
                                 f"{e.args[0]!r} (layers must be listed in order)") from None
            tensors[name] = layer(ins if len(ins) > 1 else ins[0])
        try:
            inputs = [tensors[r] for r in _layer_refs(config.get("input_layers"), "input_layers")]
            outputs = [tensors[r] for r in _layer_refs(config.get("output_layers"), "output_layers")]
        except KeyError as e:
            raise ValueError(f"Model.from_config: unknown input/output layer {e.args[0]!r}") from None
        return cls(inputs=inputs if len(inputs) > 1 else inputs[0],
                   outputs=outputs if len(outputs) > 1 else outputs[0], name=config.get("name"))

    def save(self, filepath, overwrite=True, include_optimizer=True, **kwargs):
        """Write the model (config, weights, compile info, optimizer state) to a zip file;
        read it back with ``qnn_ext.models.load_model``. See qnn_ext/saving.py for the format."""
        from .saving import save_model
        if kwargs.pop("save_format", None) not in (None, "qnn_ext", "keras"):
            raise ValueError(f"Model '{self.name}': save_format must be 'qnn_ext'")
        if kwargs:
            raise TypeError(f"Model '{self.name}': save got unexpected argument(s): {', '.join(kwargs)}")
        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def to_json(self, **kwargs):
        """The architecture as Keras's ``{"class_name", "config"}`` JSON string."""
        from .saving import model_to_json
        return model_to_json(self, **kwargs)

    def save_weights(self, filepath):
        np.savez(filepath, **{f"w{i:04d}": v for i, v in enumerate(self.get_weights())})

    def load_weights(self, filepath):
        with np.load(filepath, allow_pickle=False) as f:
            self.set_weights([f[k] for k in sorted(f.files)])


def load_model(filepath, custom_objects=None, compile=True):
    """A model written by ``Model.save`` (validated; never runs code from the file)."""
    from .saving import load_model as _load
    return _load(filepath, custom_objects=custom_objects, compile=compile)


def model_from_json(json_string, custom_objects=None):
    from .saving import model_from_json as _from_json
    return _from_json(json_string, custom_objects=custom_objects)


class Sequential(Model):
    """A linear stack of layers: ``Sequential([Input((28, 28, 1)), QConv2D(...), ...])``."""

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack = []
        self._input_tensor = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor):
            if self._stack or self._input_tensor is not None:
                raise ValueError(f"Sequential '{self.name}': an Input must come first")
            self._input_tensor = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}': add() takes a layer, got {type(layer).__name__}")
        self._stack.append(layer)
        if self._input_tensor is None and len(self._stack) == 1 and layer._batch_input_shape is not None:
            from .layers.base import Input
            bis = layer._batch_input_shape
            self._input_tensor = Input(shape=bis[1:], batch_size=bis[0])
        self._graph = None
        if self._input_tensor is not None:
            self._rebuild()

    def _rebuild(self):
        t = self._input_tensor
        for layer in self._stack:
            t = layer(t)
        self._init_graph([self._input_tensor], [t])

    @property
    def layers(self):
        return list(self._stack)

    def _ensure_built_for(self, x):
        if self._graph:
            return
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}': the model has no layers")
        from .layers.base import Input
        a = np.asarray(_as_list(x)[0])
        self._input_tensor = Input(shape=a.shape[1:])
        self._rebuild()

    def call(self, inputs, training=False):
        self._ensure_built_for(inputs)
        return super().call(inputs, training)

    def _prepare(self, x, y=None):
        self._ensure_built_for(x)
        return super()._prepare(x, y)

    def build(self, input_shape=None):
        if input_shape is not None and not self._graph:
            from .layers.base import Input
            self._input_tensor = Input(shape=tuple(input_shape)[1:], batch_size=input_shape[0])
            self._rebuild()

    def get_config(self):
        return {"name": self.name,
                "layers": ([{"class_name": "InputLayer", "config": self._input_tensor.layer.get_config()}]
                           if self._input_tensor is not None else [])
                + [{"class_name": type(l).__name__, "config": l.get_config()} for l in self._stack]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .layers import deserialize
        model = cls(name=config.get("name"))
        for spec in config["layers"]:
            if spec["class_name"] == "InputLayer":
                from .layers.base import Input
                bis = spec["config"]["batch_input_shape"]
                model.add(Input(shape=tuple(bis[1:]), batch_size=bis[0],
                                name=spec["config"].get("name")))
            else:
                model.add(deserialize(spec, custom_objects))
        return model
