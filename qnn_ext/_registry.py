"""Name registries shared by initializers, losses, constraints and regularizers: Keras's
{"class_name", "config"} (de)serialization over a fixed table of our classes (nothing named in a
config is imported or evaluated), and unknown-name errors that suggest close names."""
import difflib


def unknown(kind, name, valid):
    close = difflib.get_close_matches(str(name), list(valid), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"Unknown {kind} {name!r}.{hint} Valid names: {', '.join(sorted(valid))}")


def serialize(obj):
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize(kind, config, classes, names, get, custom_objects=None):
    """An object from a name (via `get`) or {"class_name", "config"}; `classes` maps class
    names, `names` Keras's snake_case aliases, to classes."""
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"{kind}s.deserialize: expected a dict with 'class_name' and 'config', "
                         f"got {config!r}")
    table = dict(classes)
    table.update(custom_objects or {})
    name = config["class_name"]
    cls = table.get(name) or names.get(name)
    if cls is None:
        raise unknown(kind, name, list(classes) + list(names))
    return cls.from_config(dict(config.get("config", {})))


class Configurable:
    """Base of the small config-only objects (constraints, regularizers): Keras's
    get_config/from_config pair and a repr that shows the config."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({self.get_config()})"
