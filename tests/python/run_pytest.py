"""CTest's entry for the Python module's tests: python3 run_pytest.py TAIA FIXTURES WORK PYTHON_DIR.
Exits 77 (skipped, saying why) when pytest, numpy or the built module is missing."""
import os
import sys

taia_bin, fixtures, work, python_dir = sys.argv[1:5]
try:
    import numpy  # noqa: F401
    import pytest
except ImportError as e:
    print(f"skip: {e.name} is not installed (apt install python3-pytest python3-numpy)")
    sys.exit(77)
if not os.path.exists(os.path.join(python_dir, "taia", "__init__.py")):
    print(f"skip: the taia module was not built into {python_dir} (pybind11 or the Python headers missing)")
    sys.exit(77)
os.environ.update(TAIA_BIN=taia_bin, TAIA_FIXTURES=fixtures, TAIA_TEST_WORK=work)
sys.path.insert(0, python_dir)
here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-o", "python_files=test_*.py", here, *sys.argv[5:]]))
