#!/usr/bin/env bash
# Submits a sharded Tapedeck run to Slurm: an array of N shard tasks (shard.sbatch) and the
# merge (merge.sbatch) that waits for all of them (--dependency=afterok). Prints the two job
# ids ("ARRAY MERGE"); the merged run directory is OUT once the merge job has completed.
#
#   deploy/slurm/submit.sh N RUN_DIR OUT COMMAND [ARGS...]
#   deploy/slurm/submit.sh 64 /shared/runs/r1 /shared/runs/r1/merged \
#       backtest --store postgres://tapedeck@db:5432/market --strategy /shared/ema-cross.wasm
#
# TAPEDECK names the binary (default: `tapedeck` on the nodes' PATH); extra sbatch options
# (a partition, an account, a time limit) go in SBATCH_* environment variables, which sbatch
# reads itself (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT). Task logs go to
# RUN_DIR/logs/.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 N RUN_DIR OUT COMMAND [ARGS...]" >&2
    exit 2
fi
n=$1 run_dir=$2 out=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$run_dir/logs"
export TAPEDECK="${TAPEDECK:-tapedeck}"
array=$(sbatch --parsable --export=ALL --array="0-$((n - 1))" \
    --output="$run_dir/logs/shard-%a.out" "$here/shard.sbatch" "$run_dir" "$@")
array=${array%%;*}
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    --output="$run_dir/logs/merge.out" "$here/merge.sbatch" "$run_dir" "$out")
echo "${array} ${merge%%;*}"
