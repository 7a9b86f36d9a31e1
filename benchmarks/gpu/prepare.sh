#!/bin/bash
# Prepare a GPU check of qshpc for the `device` machine (one NVIDIA H200, Python 3.12,
# CUDA 13 driver, no network): wheels and libraries in .gpu/ (ignored by git; carry it).
#
# qiskit-aer-gpu's wheel (20 MB) needs CUDA 12's runtime (carried: 1 MB) and links
# cuStateVec, cuTensorNet, cuSOLVER and cuSPARSE, whose CUDA 12 wheels are far over the
# 64 MiB a call may carry. Aer's statevector method runs on its own GPU kernels unless
# cuStateVec_enable=True, so those four are stubs here: the sonames and symbol versions
# Aer's extension asks for, every function returning an error. What this checks is qshpc's
# GPU path (device choice, binding, Aer's GPU results), not cuStateVec.
#
# Run (here): bash benchmarks/gpu/prepare.sh
# Then, with the device tool: command `bash benchmarks/gpu/run.sh 2>&1 | tee $OUT/gpu.log`,
# carry [".gpu"].
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/whl .gpu/lib
cp benchmarks/gpu/*.py .gpu/
P=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .gpu/whl
   --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
   --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
   --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 --platform any)
python3 -m pip download -q "${P[@]}" qiskit-aer-gpu==0.18.2 qiskit==2.6.2 rustworkx==0.18.1 \
    dill==0.4.1 stevedore==5.10.0 mpich==5.0.2 mpi4py==4.1.2 flufl.lock==8.2.0 atpublic \
    nvidia-cuda-runtime-cu12==12.8.90
tmp=$(mktemp -d)
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    .gpu/whl/qiskit_aer_gpu-*.whl "$tmp/aer"
python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    .gpu/whl/nvidia_cuda_runtime_cu12-*.whl "$tmp/rt"
cp "$tmp"/rt/nvidia/cuda_runtime/lib/libcudart.so.12 .gpu/lib/
rm .gpu/whl/nvidia_cuda_runtime_cu12-*.whl
so=$(ls "$tmp"/aer/qiskit_aer/backends/controller_wrappers*.so)
for lib in custatevec:1 cutensornet:2; do
    name=${lib%%:*}; major=${lib##*:}
    syms=$(nm -D --undefined-only "$so" | grep "@lib$name" | awk '{print $2}' | sed 's/@.*//' | sort -u)
    { for s in $syms; do echo "int $s(void){return 1;}"; done; } > "$tmp/$name.c"
    { echo "lib$name.so.0 { global:"; for s in $syms; do echo " $s;"; done; echo " local: *; };"; } > "$tmp/$name.map"
    gcc -shared -fPIC -o ".gpu/lib/lib$name.so.$major" "$tmp/$name.c" \
        -Wl,--version-script="$tmp/$name.map" -Wl,-soname,"lib$name.so.$major"
done
echo "" > "$tmp/empty.c"
gcc -shared -fPIC -o .gpu/lib/libcusolver.so.11 "$tmp/empty.c" -Wl,-soname,libcusolver.so.11
gcc -shared -fPIC -o .gpu/lib/libcusparse.so.12 "$tmp/empty.c" -Wl,-soname,libcusparse.so.12
rm -rf "$tmp"
du -sh .gpu
