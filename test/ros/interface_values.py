"""Deterministic, non-default values for every field of every resrl interface."""
import resrl.msg as rmsg
import resrl.srv as rsrv

MESSAGES = {n: getattr(rmsg, n) for n in dir(rmsg) if not n.startswith("_") and hasattr(getattr(rmsg, n), "get_fields_and_field_types")}
SERVICES = {n: getattr(rsrv, n) for n in dir(rsrv) if not n.startswith("_") and hasattr(getattr(rsrv, n), "Request")}


def _value(ftype: str, seed: int):
    if ftype.startswith("sequence<") or ftype.endswith("]"):
        inner = ftype[len("sequence<"):-1] if ftype.startswith("sequence<") else ftype.split("[")[0]
        inner = inner.split(",")[0]
        n = int(ftype.split("[")[1][:-1]) if ftype.endswith("]") and not ftype.endswith("[]") else 3
        return [_value(inner, seed + i) for i in range(n)]
    if ftype in ("float", "double"):
        return 0.5 + seed
    if ftype == "boolean":
        return seed % 2 == 0
    if ftype.startswith("uint") or ftype.startswith("int") or ftype in ("octet", "byte", "char"):
        return (seed * 7 + 3) % 100
    if ftype == "string":
        return f"s{seed}"
    return None  # nested message: handled by fill


def fill(msg, seed: int = 1):
    for i, (name, ftype) in enumerate(msg.get_fields_and_field_types().items()):
        value = _value(ftype, seed + i)
        if value is None:
            fill(getattr(msg, name), seed + i)
            continue
        if isinstance(value, list) and value and value[0] is None:  # sequence of messages
            elem_type = _nested_class(msg, name)
            value = [fill(elem_type(), seed + i + k) for k in range(2)]
        setattr(msg, name, value)
    return msg


def _nested_class(msg, name):
    ftype = msg.get_fields_and_field_types()[name]
    inner = ftype[len("sequence<"):-1]
    pkg, _, cls = inner.partition("/")
    module = __import__(f"{pkg}.msg", fromlist=[cls])
    return getattr(module, cls)
