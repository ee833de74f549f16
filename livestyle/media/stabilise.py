"""`--stabilise`: steadier video from any per-frame filter, at inference time.

A per-frame filter repaints its strokes a little differently on every frame, and on
video that reads as flicker. TemporalBlend keeps the strokes where the picture has not
changed: the previous OUTPUT is warped by optical flow onto the current frame and
mixed into the current stylized frame wherever that flow is trustworthy. It is causal
(one frame of state, no look-ahead, so it runs live) and recursive (the previous output
is itself blended), in the spirit of Bonneel et al. 2015 ("Blind video temporal
consistency") and Lai et al. 2018 ("Learning blind video temporal consistency").

Trust is judged on the INPUT frames: where the previous frame, warped, matches the
current one (residual r small) the flow is right and nothing was uncovered;
alpha = strength * exp(-(r / sigma)^2), zero where the flow leaves the frame. A scene
cut (mean residual over the frame above `cut`) or a new frame size starts afresh.

The flow is Farneback's, not DIS: the flicker figure (livestyle.measure.flicker)
judges with DIS flow, and a stabiliser that shared the judge's flow could fit its
errors instead of the motion.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from livestyle.convert.runtime import apply

DEFAULT_STRENGTH = 0.7


class TemporalBlend:
    """Feed (frame, stylized frame) pairs in order, one at a time; returns the blended
    frame (uint8 RGB). `strength` is the previous output's weight where the flow is
    exact (0: off), `sigma` the input residual (0..255) at which trust falls to 1/e,
    `flow_scale` the size the flow is computed at, `cut` the mean residual that counts
    as a scene cut."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, sigma: float = 12.0, flow_scale: float = 0.5, cut: float = 40.0):
        if not 0 <= strength < 1:
            raise ValueError(f"strength must be at least 0 and under 1 (1 would freeze the first frame), got {strength:g}")
        if not sigma > 0:
            raise ValueError(f"sigma must be over 0, got {sigma:g}")
        if not 0 < flow_scale <= 1:
            raise ValueError(f"flow_scale must be over 0 and at most 1, got {flow_scale:g}")
        if not cut > 0:
            raise ValueError(f"cut must be over 0, got {cut:g}")
        self.strength, self.sigma, self.flow_scale, self.cut = float(strength), float(sigma), float(flow_scale), float(cut)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next one comes out as it went in."""
        self._prev = None  # (small grey frame, frame float32, blended output float32)
        self.last_alpha = None  # the previous output's weight per pixel, for a look at it

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        frame, stylized = np.asarray(frame), np.asarray(stylized)
        if frame.shape != stylized.shape or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {frame.shape} and stylized {stylized.shape} must be the same (H, W, 3) size")
        if self.strength == 0:
            return np.array(stylized, np.uint8)
        grey = self._grey(frame)
        cur = frame.astype(np.float32)
        out = stylized.astype(np.float32)
        if self._prev is not None and self._prev[1].shape == cur.shape:
            out = self._blend(grey, cur, out)
        else:
            self.last_alpha = None
        self._prev = (grey, cur, out)
        # the float output is kept for the recursion: rounding each frame would drift
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(frame, np.uint8), cv2.COLOR_RGB2GRAY)
        if self.flow_scale == 1:
            return grey
        h, w = grey.shape
        return cv2.resize(grey, (max(8, round(w * self.flow_scale)), max(8, round(h * self.flow_scale))), interpolation=cv2.INTER_AREA)

    def _blend(self, grey: np.ndarray, cur: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        prev_grey, prev_frame, prev_out = self._prev
        h, w = cur.shape[:2]
        # backward flow (current -> previous): where each current pixel was, so the
        # previous output can be pulled onto this frame with remap
        flow = cv2.calcOpticalFlowFarneback(grey, prev_grey, None, pyr_scale=0.5, levels=4, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
        if flow.shape[:2] != (h, w):
            sh, sw = flow.shape[:2]
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([w / sw, h / sh])
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = gx + flow[..., 0], gy + flow[..., 1]
        warped_frame = cv2.remap(prev_frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # mean over RGB; blurred a little so one noisy pixel neither earns nor loses trust alone
        residual = cv2.GaussianBlur(cv2.absdiff(cur, warped_frame).mean(axis=2), (0, 0), 1.5)
        if float(residual.mean()) > self.cut:
            self.last_alpha = None
            return stylized  # a scene cut: nothing of the last shot belongs in this one
        alpha = self.strength * np.exp(-np.square(residual / self.sigma))
        # pixels that came from outside the previous frame have no previous output
        alpha[(map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)] = 0
        self.last_alpha = alpha
        warped_out = cv2.remap(prev_out, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        a = alpha[..., None]
        return a * warped_out + (1 - a) * stylized


def stylize_frame(runner: Callable[[np.ndarray], np.ndarray], rgb: np.ndarray, strength: float = 1.0,
                  blend: TemporalBlend | None = None) -> np.ndarray:
    """convert.runtime.apply (strength * stylized + (1 - strength) * photo) with the blend,
    if any, on the stylized frame BEFORE the photo is mixed in. Blending the mix instead
    would also warp the photo's share through the recursion: at best a no-op (the photo
    does not flicker), at worst resampling blur and ghosts where the flow is wrong. At
    strength 1 (the default) the two orders are the same."""
    if blend is None:
        return apply(runner, rgb, strength)
    if strength <= 0:
        blend.reset()  # apply skips the network: the next stylized frame starts afresh
    return apply(lambda x: blend(x, runner(x)), rgb, strength)
