# lit configuration for attnc: dialect, passes, spec loader and tools.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "attnc"
# RUN lines use bash (loops, $(...)), not lit's internal shell.
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.attnc_obj_root, "tests", "lit")

config.environment["FILECHECK_OPTS"] = "--enable-var-scope --dump-input=fail"
config.substitutions.append(("%attnc_src", config.attnc_source_dir))
config.substitutions.append(("%specs", os.path.join(config.attnc_source_dir, "specs", "examples")))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "Inputs")))

llvm_config.with_system_environment(["HOME", "TMPDIR"])
llvm_config.use_default_substitutions()
llvm_config.add_tool_substitutions(["attnc", "attnc-opt", "attnc-run"], [config.attnc_tools_dir])
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
