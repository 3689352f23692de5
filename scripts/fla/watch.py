"""Runs a Python script (argv[2:]) as __main__, printing every thread's stack to stderr each
argv[1] seconds: shows where a slow run spends its time (Triton compile, autotune, a kernel)."""
import faulthandler
import runpy
import sys

faulthandler.dump_traceback_later(float(sys.argv[1]), repeat=True)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
