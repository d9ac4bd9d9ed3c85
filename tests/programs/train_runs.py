"""Run by tests/test_train_config.py: `train_runs.py JSON` runs train/train.py once per argv of the JSON list, as
`python train/train.py ARGV` would, but in one process (one start-up of JAX for all of them). File descriptor 2
goes to a file per run, so whatever would reach the terminal (warnings, logs, messages of the C++ libraries) is in
that run's stderr. One RESULT line: per run, its exit code and stderr."""

import json
import os
import runpy
import sys
import tempfile
import traceback

TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "train", "train.py")


def run(argv):
    sys.argv = ["train/train.py", *argv]
    with tempfile.TemporaryFile("w+") as err:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            runpy.run_path(TRAIN, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code
        except BaseException:
            traceback.print_exc()  # as the interpreter would, before exiting with status 1
            code = 1
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return {"code": code, "err": err.read()}


print("RESULT " + json.dumps([run(argv) for argv in json.loads(sys.argv[1])]))
