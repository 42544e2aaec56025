"""Stands in for wandb on a GPU machine without it: avalanche-lib imports it, and the GPU
benchmark never logs to it (put bench/gpu_stubs on PYTHONPATH there)."""
