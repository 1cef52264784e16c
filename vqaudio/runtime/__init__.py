"""Running a model's networks outside PyTorch: ONNX export (:mod:`vqaudio.runtime.export`, the graphs in
:mod:`vqaudio.runtime.graphs`) and the onnxruntime execution path (:mod:`vqaudio.runtime.onnx`), selected by
``vqaudio.load(..., runtime="onnxruntime")`` (:func:`vqaudio.runtime.sessions.runtime_codec`). Needs the ``onnx``
extra (``pip install 'vqaudio[onnx]'``); nothing here imports it until it is used."""
