"""Deployment: what is measured and exported (targets), a whole detector as one
traceable graph, ONNX export and its validation, and the pinned trtexec recipe."""
