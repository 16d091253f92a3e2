"""torch_ref: calm's independent PyTorch reference, one package for the tests and the experiments.

    llama_ref       plain-PyTorch LlamaForCausalLM written from the math (HF parameter names),
                    load_model_dir() for a model directory
    compose_ref     plain-PyTorch CALM composition of two llama_ref models (src/compose.h)
    safetensors_io  safetensors reader and writer, numpy only

Put the folder that holds this package (tests/) on the path of the command that starts
Python, never in the code: `PYTHONPATH=tests /usr/bin/python3 -m torch_ref.check_ref`, or
`from torch_ref import llama_ref` in a script started with PYTHONPATH=tests. README.md
lists the runnable modules and the ctest entries that use them.
"""
