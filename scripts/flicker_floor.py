"""The flicker figure's floor for a palette: a pointwise filter (each pixel's output depends
on that pixel alone, so it invents nothing from frame to frame) with a trained filter's
tonality, on the same clip and figure as flicker_compare.py.

    python scripts/flicker_floor.py OUT CLIP WEIGHTS '{"antialias": 3}'
(docs/ABLATIONS.md section 14: the 2.49x filter measured 0.54x here; the network settings over params.yaml's gpu profile)
The LUT maps input luminance (64 bins) to the trained filter's mean output colour on the
clip's first frame."""
import dataclasses
import json
import sys
from pathlib import Path
import cv2
import numpy as np
from livestyle.config import NetworkConfig, load_params
from livestyle.convert.export import stylizer
from livestyle.media.preview import PreviewConfig, render_clip

out, clip, weights, netjson = sys.argv[1:5]
params = load_params(profile="gpu")
cfg = dataclasses.replace(PreviewConfig.from_params(params["preview"]), max_seconds=5)
net = dataclasses.replace(NetworkConfig.from_params(params["network"]), **json.loads(netjson))
trained = stylizer(Path(weights), net)
cap = cv2.VideoCapture(clip)
ok, f = cap.read()
if not ok:
    sys.exit(f"{clip}: no frame could be read; give a video file ffmpeg/OpenCV reads")
f = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
f = cv2.resize(f, (f.shape[1] // 2 // 4 * 4, f.shape[0] // 2 // 4 * 4))
y = np.clip(trained(f[None])[0], 0, 255)
lum = f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
bins = np.clip((lum / 256 * 64).astype(int), 0, 63)
lut = np.zeros((64, 3), np.float32)
for b in range(64):
    m = bins == b
    lut[b] = y[m].mean(0) if m.any() else np.nan
idx = np.arange(64)
for c in range(3):
    known = ~np.isnan(lut[:, c])
    lut[:, c] = np.interp(idx, idx[known], lut[known, c])
# interpolate between bin centres so the map is continuous (no banding flicker)
centres = (idx + 0.5) * 4
def pointwise(batch):
    b = np.asarray(batch, np.float32)
    l = b @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([np.interp(l, centres, lut[:, c]) for c in range(3)], -1).astype(np.float32)
m = render_clip(pointwise, "pointwise", clip, Path(out) / "pointwise", cfg, name="clip")
print(f"pointwise: warp error {m['warp_error_stylized']:.5f}, input {m['warp_error_original']:.5f}, ratio {m['warp_error_ratio']:.2f}")
