"""Ways to run a model, each prepared once and then timed by the same loop.

A mode is ``prepare(target, example, context) -> run``; ``run()`` computes the
target's outputs (tensors, arrays or ONNX Runtime values, possibly nested) so
the engine can check them against eager fp32 before timing. ``prepare`` never
changes the target's model (it works on copies) and raises
:class:`ModeUnavailable` with the reason when the mode cannot run here (no CUDA,
no TensorRT, ...), which the engine reports as "skipped".
"""
import copy
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np
import torch

from ..deploy.onnx_export import export_onnx
from ..errors import ExportUnsupported, ModeUnavailable


@dataclass
class Context:
    device: str
    threads: int
    work_dir: str


class CapturedRun:
    """A run that replays work bound to fixed memory (a CUDA graph, ONNX Runtime's
    IO binding, a TensorRT context). It holds every object whose memory that work
    reads or writes: freed, the memory goes to the next row's tensors and the replay
    computes from them (garbage weights, or out-of-range attention-bias indices)."""

    def __init__(self, run: Callable[[], object], *keep_alive):
        self.run, self.keep_alive = run, keep_alive

    def __call__(self):
        return self.run()


def _require_cuda(context: Context, mode: str):
    if not context.device.startswith('cuda'):
        raise ModeUnavailable(f'{mode} runs on CUDA only (--device cuda)')
    if not torch.cuda.is_available():
        raise ModeUnavailable(f'{mode}: CUDA is not available on this machine')


def _fused(model):
    if not hasattr(model, 'fuse'):
        raise ModeUnavailable(f'{type(model).__name__} has no fuse()')
    return copy.deepcopy(model).fuse()


def _deployable(model):
    """A fused copy where the model can fuse, else a plain copy."""
    return _fused(model) if hasattr(model, 'fuse') else copy.deepcopy(model)


def _export_for_runtime(target, example, path):
    """ONNX of the deployable model, exported on the CPU whatever device it sits on."""
    try:
        return export_onnx(_deployable(target.model).cpu(), example.cpu(), path,
                           output_names=target.output_names)
    except ExportUnsupported as err:
        raise ModeUnavailable(str(err))


def eager(target, example, context):
    return lambda: target.model(example)


def fused(target, example, context):
    deployed = _fused(target.model)
    return lambda: deployed(example)


def channels_last(target, example, context):
    deployed = _deployable(target.model).to(memory_format=torch.channels_last)
    x = example.contiguous(memory_format=torch.channels_last)
    return lambda: deployed(x)


def torchscript(target, example, context):
    """Fused model traced, frozen and optimised for inference: TorchScript fuses
    conv+ReLU/add and keeps oneDNN layouts between convolutions (CPU)."""
    deployed = _deployable(target.model)
    try:
        with torch.no_grad():
            traced = torch.jit.trace(deployed, example, check_trace=False)
            optimized = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            optimized(example)
    except Exception as err:
        raise ModeUnavailable(f'TorchScript tracing failed: {type(err).__name__}: '
                              f'{str(err).splitlines()[0][:200]}')
    return lambda: optimized(example)


def compiled(target, example, context):
    deployed = _deployable(target.model)
    try:
        compiled_model = torch.compile(deployed)
        with torch.no_grad():
            compiled_model(example)  # compile now, not inside the timed loop
    except Exception as err:  # compilers fail in many environment-specific ways
        raise ModeUnavailable(f'torch.compile failed: {type(err).__name__}: '
                              f'{str(err).splitlines()[0][:200]}')
    return lambda: compiled_model(example)


def _autocast(dtype, name):
    def prepare(target, example, context):
        _require_cuda(context, name)
        deployed = _deployable(target.model)

        def run():
            with torch.autocast('cuda', dtype=dtype):
                return deployed(example)
        return run
    return prepare


def cuda_graph(target, example, context):
    """fp16 fused model captured once and replayed: no per-kernel launch overhead."""
    _require_cuda(context, 'cuda_graph')
    deployed = _deployable(target.model).half()
    static_input = example.half().clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):  # warm up cuDNN's algorithm choice outside the capture
            deployed(static_input)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_outputs = deployed(static_input)

    def run():
        graph.replay()
        return static_outputs
    return CapturedRun(run, deployed, static_input)


def onnxruntime_mode(target, example, context):
    """ONNX Runtime on the CPU, or with its CUDA provider on the GPU's own tensors
    (IO binding: no host copies in the timed call). A CUDA run without the CUDA
    provider is refused rather than silently timed on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModeUnavailable('onnxruntime is not installed')
    on_cuda = context.device.startswith('cuda')
    if on_cuda and 'CUDAExecutionProvider' not in ort.get_available_providers():
        raise ModeUnavailable('onnxruntime has no CUDAExecutionProvider here '
                              '(pip install onnxruntime-gpu)')
    path = os.path.join(context.work_dir, f'{type(target.model).__name__}_{os.getpid()}.onnx')
    _export_for_runtime(target, example, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = context.threads
    # ONNX Runtime's threads otherwise spin on the cores after each run, slowing
    # whatever runs next: the next row of an interleaved round
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if not on_cuda:
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        feed = {session.get_inputs()[0].name: example.numpy()}
        return lambda: session.run(None, feed)
    device_id = example.device.index or 0
    session = ort.InferenceSession(path, options, providers=[
        ('CUDAExecutionProvider', {'device_id': device_id})])
    binding = session.io_binding()
    static_input = example.contiguous()
    binding.bind_input(session.get_inputs()[0].name, 'cuda', device_id, np.float32,
                       tuple(static_input.shape), static_input.data_ptr())
    for output in session.get_outputs():
        binding.bind_output(output.name, 'cuda', device_id)

    def run():
        session.run_with_iobinding(binding)
        return binding.get_outputs()
    return CapturedRun(run, static_input)


def tensorrt_mode(target, example, context):
    """fp16 TensorRT engine built from our ONNX through the ``tensorrt`` package."""
    _require_cuda(context, 'tensorrt')
    try:
        import tensorrt as trt
    except ImportError:
        raise ModeUnavailable('the tensorrt Python package is not installed')
    path = os.path.join(context.work_dir,
                        f'{type(target.model).__name__}_{os.getpid()}_trt.onnx')
    output_names = _export_for_runtime(target, example, path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with open(path, 'rb') as f:
        if not parser.parse(f.read()):
            raise ModeUnavailable(f'TensorRT could not parse the ONNX: {parser.get_error(0)}')
    if any(-1 in tuple(network.get_output(i).shape) for i in range(network.num_outputs)):
        raise ModeUnavailable('outputs of data-dependent size (a whole detector\'s N '
                              'detections) need buffers this mode does not size; time the '
                              'ONNX with trtexec (tools/jetson/build_and_profile.sh)')
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

    def run():
        trt_context.execute_async_v3(stream)
        return [buffers[name] for name in output_names]
    return CapturedRun(run, engine)


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
