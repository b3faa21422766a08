"""The fault suite (`vigil bench faults`): real processes, real brokers, one fault at a time."""

from shell.faults.faults import run_faults, run_faults_async
from shell.faults.report import FaultResult, Overload, format_table

__all__ = ["FaultResult", "Overload", "format_table", "run_faults", "run_faults_async"]
