"""livestyle.convert.coreml_io: every reader of a Core ML path fails the same way, naming the file."""

import pytest

from livestyle.convert.coreml_io import load_mlmodel, load_spec
from livestyle.convert.mil_exec import MilProgram
from livestyle.convert.nn_exec import NNModel
from livestyle.convert.verify import check_spec
from livestyle.errors import LivestyleError

READERS = [load_mlmodel, load_spec, MilProgram.load, NNModel.load, check_spec]


@pytest.mark.parametrize("read", READERS)
def test_missing_and_unreadable_models_name_the_file(read, tmp_path):
    with pytest.raises(LivestyleError, match="nope.mlpackage: no such Core ML model"):
        read(tmp_path / "nope.mlpackage")
    (tmp_path / "bad.mlmodel").write_bytes(b"not a protobuf")
    with pytest.raises(LivestyleError, match=r"bad.mlmodel: not a readable Core ML model \(DecodeError"):
        read(tmp_path / "bad.mlmodel")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(LivestyleError, match=r"empty.mlpackage: not a readable Core ML model \(.*Manifest"):
        read(tmp_path / "empty.mlpackage")
