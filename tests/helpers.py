"""Small utilities shared by the tests."""
# the library's own non-trivial weights for checks (the latency and export tools use
# them too), under the short name the tests use
from efficientvit_det.models.checking import randomize_for_checking_ as randomize_  # noqa: F401


def read_reference_keys(path):
    """``name<TAB>shape`` lines -> {name: shape tuple}."""
    keys = {}
    with open(path) as f:
        for line in f:
            name, shape = line.rstrip('\n').split('\t')
            keys[name] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    return keys
