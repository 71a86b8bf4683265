"""report.html: a self-contained page of generated molecules with an interactive 3D view of each (canvas 2D).

    from molgen.report import write_report
    write_report("report.html", molecules, rows, summary=[("sampler", "ancestral")], metrics=metrics.to_dict())
"""

from molgen.report.page import write_report

__all__ = ["write_report"]
