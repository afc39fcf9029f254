"""Builds taia._taia with the project's CMake (pyproject.toml holds the metadata).

The module is built for the interpreter running pip (-DTAIA_PYTHON). TAIA_CMAKE_BUILD_DIR=DIR
builds its target in an existing CMake build folder instead of configuring a new one (the
folder must have been configured for this interpreter: the test suite uses ./build)."""
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def project_version():
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    m = re.search(r"project\(taia VERSION ([0-9.]+)", text)
    if not m:
        raise RuntimeError("CMakeLists.txt: no 'project(taia VERSION X.Y.Z'")
    return m.group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.environ.get("TAIA_CMAKE_BUILD_DIR")
        if not build_dir:
            build_dir = os.path.join(os.path.abspath(self.build_temp), "cmake")
            subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                            f"-DTAIA_PYTHON={sys.executable}", "-DTAIA_BUILD_TESTS=OFF", "-DTAIA_BUILD_BENCH=OFF"],
                           check=True)
        subprocess.run(["cmake", "--build", build_dir, "--target", "taia_python", "--parallel"], check=True)
        built = os.path.join(build_dir, "python", "taia", "_taia" + sysconfig.get_config_var("EXT_SUFFIX"))
        if not os.path.exists(built):
            raise RuntimeError(f"{built} was not built: is {build_dir} configured for {sys.executable} "
                               "(TAIA_PYTHON), with python3-pybind11 and python3-dev installed?")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built, target)


setup(version=project_version(), ext_modules=[Extension("taia._taia", sources=[])], cmdclass={"build_ext": CMakeBuild},
      options={"build": {"build_base": "build-pip"}, "egg_info": {"egg_base": "build-pip"}})
