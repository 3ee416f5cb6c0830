"""Ways to run a model, each prepared once and then timed by the same loop.

A mode is ``prepare(model, example, context) -> callable``. It raises
:class:`ModeUnavailable` with the reason when it cannot run here (no CUDA, no
TensorRT, a model without ``fuse``), which the engine reports as "skipped".
"""
import copy
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict

import torch


class ModeUnavailable(RuntimeError):
    pass


@dataclass
class Context:
    device: str
    threads: int
    work_dir: str


def _require_cuda(context: Context, mode: str):
    if not context.device.startswith('cuda'):
        raise ModeUnavailable(f'{mode} runs on CUDA only (--device cuda)')
    if not torch.cuda.is_available():
        raise ModeUnavailable(f'{mode}: CUDA is not available on this machine')


def _fused(model):
    if not hasattr(model, 'fuse'):
        raise ModeUnavailable(f'{type(model).__name__} has no fuse()')
    return copy.deepcopy(model).fuse()


def eager(model, example, context):
    return lambda: model(example)


def fused(model, example, context):
    deployed = _fused(model)
    return lambda: deployed(example)


def channels_last(model, example, context):
    deployed = _fused(model) if hasattr(model, 'fuse') else copy.deepcopy(model)
    deployed = deployed.to(memory_format=torch.channels_last)
    x = example.contiguous(memory_format=torch.channels_last)
    return lambda: deployed(x)


def torchscript(model, example, context):
    """Fused model traced, frozen and optimised for inference: TorchScript fuses
    conv+ReLU/add and keeps oneDNN layouts between convolutions (CPU)."""
    deployed = _fused(model) if hasattr(model, 'fuse') else model
    try:
        with torch.no_grad():
            traced = torch.jit.trace(deployed, example, check_trace=False)
            optimized = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            optimized(example)
    except Exception as err:
        raise ModeUnavailable(f'TorchScript tracing failed: {type(err).__name__}: '
                              f'{str(err).splitlines()[0][:200]}')
    return lambda: optimized(example)


def compiled(model, example, context):
    deployed = _fused(model) if hasattr(model, 'fuse') else model
    try:
        compiled_model = torch.compile(deployed)
        with torch.no_grad():
            compiled_model(example)  # compile now, not inside the timed loop
    except Exception as err:  # compilers fail in many environment-specific ways
        raise ModeUnavailable(f'torch.compile failed: {type(err).__name__}: '
                              f'{str(err).splitlines()[0][:200]}')
    return lambda: compiled_model(example)


def _autocast(dtype, name):
    def prepare(model, example, context):
        _require_cuda(context, name)
        deployed = _fused(model) if hasattr(model, 'fuse') else model

        def run():
            with torch.autocast('cuda', dtype=dtype):
                return deployed(example)
        return run
    return prepare


def cuda_graph(model, example, context):
    """fp16 fused model captured once and replayed: no per-kernel launch overhead."""
    _require_cuda(context, 'cuda_graph')
    deployed = (_fused(model) if hasattr(model, 'fuse') else model).half()
    static_input = example.half().clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            deployed(static_input)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        deployed(static_input)
    return graph.replay


def onnxruntime_mode(model, example, context):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModeUnavailable('onnxruntime is not installed')
    from .onnx_export import export_onnx
    path = os.path.join(context.work_dir, f'{type(model).__name__}_{os.getpid()}.onnx')
    export_onnx(_fused(model) if hasattr(model, 'fuse') else model, example.cpu(), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = context.threads
    providers = ['CUDAExecutionProvider'] if context.device.startswith('cuda') else []
    providers.append('CPUExecutionProvider')
    session = ort.InferenceSession(path, options, providers=providers)
    name = session.get_inputs()[0].name
    feed = {name: example.cpu().numpy()}
    return lambda: session.run(None, feed)


def tensorrt_mode(model, example, context):
    """fp16 TensorRT engine built from our ONNX through the ``tensorrt`` package."""
    _require_cuda(context, 'tensorrt')
    try:
        import tensorrt as trt
    except ImportError:
        raise ModeUnavailable('the tensorrt Python package is not installed')
    from .onnx_export import export_onnx
    path = os.path.join(context.work_dir, f'{type(model).__name__}_{os.getpid()}_trt.onnx')
    export_onnx(_fused(model) if hasattr(model, 'fuse') else model, example.cpu(), path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with open(path, 'rb') as f:
        if not parser.parse(f.read()):
            raise ModeUnavailable(f'TensorRT could not parse the ONNX: {parser.get_error(0)}')
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModeUnavailable('TensorRT engine build failed')
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    trt_context = engine.create_execution_context()
    buffers = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        shape = tuple(trt_context.get_tensor_shape(name))
        dtype = {trt.float32: torch.float32, trt.float16: torch.float16}[
            engine.get_tensor_dtype(name)]
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            buffers[name] = example.to(dtype).contiguous()
        else:
            buffers[name] = torch.empty(shape, dtype=dtype, device=example.device)
        trt_context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.current_stream().cuda_stream
    return lambda: trt_context.execute_async_v3(stream)


MODES: Dict[str, Callable] = {
    'eager': eager,
    'fused': fused,
    'channels_last': channels_last,
    'torchscript': torchscript,
    'compile': compiled,
    'fp16': _autocast(torch.float16, 'fp16'),
    'bf16': _autocast(torch.bfloat16, 'bf16'),
    'cuda_graph': cuda_graph,
    'onnxruntime': onnxruntime_mode,
    'tensorrt': tensorrt_mode,
}
#: precision each mode computes in (for the report)
PRECISION = {'fp16': 'fp16', 'bf16': 'bf16', 'cuda_graph': 'fp16', 'tensorrt': 'fp16'}
CPU_MODES = ['eager', 'fused', 'channels_last', 'torchscript', 'compile', 'onnxruntime']
CUDA_MODES = ['eager', 'fused', 'channels_last', 'torchscript', 'compile', 'fp16', 'bf16',
              'cuda_graph', 'onnxruntime', 'tensorrt']


def work_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), 'efficientvit_det_latency')
    os.makedirs(path, exist_ok=True)
    return path
