#!/bin/bash
# A kadlan sim sweep as a Slurm job array: one shard per array task, then
# one merge. Submit with:  sbatch slurm-array.sh
# (after the array finishes: sbatch --dependency=afterok:JOBID merge step
# below, or run it by hand).
#SBATCH --job-name=kadlan-sim
#SBATCH --array=0-3
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=00:30:00
set -euo pipefail
SHARDS=4   # = the size of --array above
OUT=${OUT:-runs/lookup}
kadlan sim --preset lookup --sweep nodes=1e4,3e4,1e5,3e5,1e6 \
  --shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}" --out "${OUT}/part${SLURM_ARRAY_TASK_ID}" --quiet
# Merge once every part exists (the last task to finish does it):
if [ "$(ls -d "${OUT}"/part*/results.json 2>/dev/null | wc -l)" -eq "${SHARDS}" ]; then
  kadlan sim merge "${OUT}"/part* --out "${OUT}/merged"
fi
