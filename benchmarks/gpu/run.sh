#!/bin/bash
# The GPU check on the device machine (see prepare.sh): qshpc tasks on the GPU and on the CPU,
# a GPU asked for where CUDA_VISIBLE_DEVICES hides them, the seed program, the device tests.
export PYTHONUNBUFFERED=1
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $(ls .gpu/whl/*.whl | grep -v mpich) || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --prefix /tmp/pfx .gpu/whl/mpich*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/pfx/bin:$PATH LD_LIBRARY_PATH=$PWD/.gpu/lib:$LD_LIBRARY_PATH
export MPI4PY_LIBMPI=/tmp/pfx/lib/libmpi.so.12 QSHPC_HOME=/tmp/qh
mk() { python3 -c "from qshpc import save_arguments; save_arguments('$1', {'n': $2, 'k': $3})"; }
echo "== 2. qshpc run, 3 ranks, 2 tasks of 16 qubits: auto, CPU"
mk /tmp/a16.h5 16 2
for dev in auto CPU; do
  s=$(date +%s.%N); QSHPC_AER_DEVICE=$dev timeout 60 python3 -m qshpc run .gpu/gpu_prog.py --workers 2 --arguments /tmp/a16.h5 --job-dir /tmp/qh/j-$dev 2>&1 | tail -3
  e=$(date +%s.%N); echo "device=$dev wall $(python3 -c "print(round($e-$s,2))") s"
  timeout 30 python3 -c "
from qshpc import open_job
for t in open_job('/tmp/qh/j-$dev').tasks():
    p = t['provenance'] or {}
    print(' task', t['task_id'], 'rank', t['rank'], p.get('device'), 'gpu', p.get('gpu'), 'wall_s', p.get('wall_s'))
" 2>&1 | tail -4
done
echo "== 3. GPU asked for, CUDA_VISIBLE_DEVICES=-1"
CUDA_VISIBLE_DEVICES=-1 QSHPC_AER_DEVICE=GPU timeout 40 python3 -m qshpc run .gpu/gpu_prog.py --workers 1 --arguments /tmp/a16.h5 --job-dir /tmp/qh/jnone 2>&1 | tail -3
timeout 30 python3 -c "
from qshpc import open_job
for t in open_job('/tmp/qh/jnone').tasks(): print(' task', t['task_id'], (t['provenance'] or {}).get('device'))
"
echo "== 4. seed program, 64 tiny circuits: auto against CPU"
python3 -c "
from qiskit.circuit.random import random_circuit
from qshpc import save_arguments
save_arguments('/tmp/seed.h5', {'circuits': [random_circuit(2,2,seed=i,measure=True) for i in range(64)]})"
for dev in CPU auto; do
  s=$(date +%s.%N); QSHPC_AER_DEVICE=$dev timeout 45 python3 -m qshpc run examples/program_4.py --workers 2 --arguments /tmp/seed.h5 --job-dir /tmp/qh/seed-$dev 2>&1 | tail -1
  e=$(date +%s.%N); echo "seed device=$dev wall $(python3 -c "print(round($e-$s,2))") s"
done
echo "== 5. unit tests of the device choice, GPU build"
timeout 40 python3 -m pytest -q -p no:cacheprovider --tb=line tests/unit/test_aer_runtime.py 2>&1 | grep -v '^$' | tail -8
echo "== 1. plain Aer, small circuits"; (cd .gpu && timeout 50 python3 aer_small.py) 2>&1 | tail -8
echo "total $(( $(date +%s) - T0 )) s"
