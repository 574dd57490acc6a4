#!/usr/bin/env bash
# Regenerate assets/screenshots/*.png from the real window, offscreen.
#   scripts/make-screenshots.sh            (about a minute: two short real training runs)
# The first shot is `studio gui PROJECT --screenshot FILE` (the window as it opens);
# the others use widgets/screenshots.py to select a layer, verify or train first.
# Settings, recent files and runs go to a throw-away HOME, so the shots never
# depend on (or change) the user's own set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch" XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data"
studio=.venv/bin/studio
python=.venv/bin/python
out=assets/screenshots
examples=assets/examples
mkdir -p "$out"

"$studio" gui "$examples/lenet_digits.layers.json" --screenshot "$out/main-window-lenet.png" --size 1400x900
# A layer selected and centred: the canvas shows the branches, the inspector its parameters.
"$python" -m widgets.screenshots "$examples/resnet_digits.layers.json" "$out/residual-cnn.png" --select conv2d_5
"$python" -m widgets.screenshots "$examples/transformer_encoder.layers.json" "$out/transformer-block.png" \
    --select multi_head_attention
"$python" -m widgets.screenshots "$examples/lenet_digits.layers.json" "$out/verify-equivalence.png" --verify
"$python" -m widgets.screenshots "$examples/lenet_digits.layers.json" "$out/training-dashboard.png" \
    --train-epochs 6 --framework both
"$python" -m widgets.screenshots "$examples/mlp_iris.layers.json" "$out/training-dashboard-dark.png" \
    --train-epochs 15 --framework both --dark
# A small window, dark: the canvas still gets half of it, the model fitted as badges.
"$python" -m widgets.screenshots "$examples/resnet_digits.layers.json" "$out/small-window-dark.png" --size 1024x700 --dark
ls -l "$out"
