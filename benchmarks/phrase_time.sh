#!/bin/bash
# Phrase -> exported model, timed as a user runs it (kws train --keyword, then kws export).
#   bash benchmarks/phrase_time.sh [PHRASE ...]        (default: computer jarvis)
# The first phrase starts from an empty feature cache (runs/phrase-time-cache), the next ones
# reuse it. Runs go to runs/phrase-time/<phrase>; one line per phrase is appended to
# runs/phrase-time/times.txt: "<phrase> train <s> export <s> total <s>".
set -euo pipefail
out=runs/phrase-time
export KWS_CACHE=$PWD/runs/phrase-time-cache
rm -rf "$KWS_CACHE"
mkdir -p "$out"
phrases=("$@")
[ ${#phrases[@]} -eq 0 ] && phrases=(computer jarvis)
for phrase in "${phrases[@]}"; do
  name=${phrase// /_}
  rm -rf "$out/$name" "$out/$name-model"
  start=$(date +%s)
  kws train configs/synthetic.toml --keyword "$phrase" -o "$out/$name" --quiet > "$out/$name.log" 2>&1
  mid=$(date +%s)
  kws export "$out/$name" -o "$out/$name-model" >> "$out/$name.log" 2>&1
  end=$(date +%s)
  echo "$phrase train $((mid - start)) s export $((end - mid)) s total $((end - start)) s" \
    | tee -a "$out/times.txt"
done
