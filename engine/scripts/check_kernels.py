"""Compiles the engine's own CUDA kernels (engine/src/cuda/*.cu) as the engine does at run time
(NVRTC, no headers) and assembles the PTX with ptxas for Ampere (sm_80) and Hopper (sm_90a),
so a kernel that would not build on the GPU machine fails the test command on a machine
without a GPU. Prints each kernel's registers, spills and shared memory.

Usage: python3 engine/scripts/check_kernels.py <dir holding nvidia/cuda_nvrtc/lib and
nvidia/cuda_nvcc/bin/ptxas> (tools/lib.sh's ensure_cuda_compilers fetches them).
"""
import ctypes
import glob
import os
import re
import subprocess
import sys
import tempfile

ARCHS = ["80", "90a"]


def nvrtc_ptx(lib, path, arch):
    src = open(path, "rb").read()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), src, os.path.basename(path).encode(), 0, None, None):
        raise SystemExit(f"{path}: nvrtcCreateProgram failed")
    # The engine passes compute_<major><minor> of the GPU it runs on.
    opts = [f"--gpu-architecture=compute_{arch}".encode(), b"-lineinfo"]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    if rc:
        print(f"FAIL {os.path.basename(path)} compute_{arch}: NVRTC\n{log.value.decode()}")
        return None
    lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
    ptx = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value


def main():
    tools = sys.argv[1]
    lib = ctypes.CDLL(os.path.join(tools, "nvidia/cuda_nvrtc/lib/libnvrtc.so.12"))
    ptxas = os.path.join(tools, "nvidia/cuda_nvcc/bin/ptxas")
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join(here, "..", "src", "cuda", "*.cu")))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in sources:
            for arch in ARCHS:
                name = os.path.basename(path)
                ptx = nvrtc_ptx(lib, path, arch.rstrip("a"))
                if ptx is None:
                    failed += 1
                    continue
                ptx_path = os.path.join(tmp, f"{name}.{arch}.ptx")
                open(ptx_path, "wb").write(ptx)
                r = subprocess.run(
                    [ptxas, f"-arch=sm_{arch}", "-v", ptx_path, "-o", os.devnull],
                    capture_output=True,
                    text=True,
                )
                if r.returncode:
                    print(f"FAIL {name} sm_{arch}: ptxas\n{r.stderr}")
                    failed += 1
                    continue
                entry = None
                for line in r.stderr.splitlines():
                    m = re.search(r"Compiling entry function '(\w+)'", line)
                    if m:
                        entry = m.group(1)
                    m = re.search(r"(\d+) bytes spill stores", line)
                    if m:
                        spills = m.group(1)
                    m = re.search(r"Used (\d+) registers", line)
                    if m and entry:
                        smem = re.search(r"(\d+) bytes smem", line)
                        print(f"ok   {name} sm_{arch} {entry}: {m.group(1)} registers, "
                              f"{spills} bytes spilled, {smem.group(1) if smem else 0} bytes shared")
    print(f"CUDA kernels: {len(sources)} sources, {len(ARCHS)} architectures, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
