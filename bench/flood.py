"""One user's flood against everyone else: the others' traffic (the mixed scenario at 10
connections, over the load's users) measured alone and while one user sends a single operation
as fast as two connections go, in alternating rounds. The flooding user gets what the rate limits
and the per-user bounds let through, and 429 for the rest; the others' p95 should stay within 2x
of its quiet value.

The floods, each the dearest of its kind a user can send (bench/scenario.lua):
- `flood_search`: the search crafted to be slow, on 10,000 tasks of the largest size;
- `flood_page`: pages of 1,000 of those tasks (1.3 MB each);
- `flood_bulk`: complete all and reopen all of 10,000 tasks;
- `flood_create`: creates of tasks of the largest size.
"""

import subprocess
import time

from bench import report
from bench.wrk import DURATION, finished, metered_wrk, started_wrk

FLOODS = ("flood_search", "flood_page", "flood_bulk", "flood_create")
VICTIMS = 10  # connections of the others
FLOODERS = 2  # connections of the flooding user
FIRST_DELETE_OFFSET = 10_000  # past those of the wrk scenarios (bench/run.py)


def floods(
    process: subprocess.Popen[bytes], database: int | None, port: int, files: dict[str, str]
) -> list[report.Run]:
    runs = []
    flood_duration = f"{int(DURATION.rstrip('s')) + 2}s"
    for number, flood in enumerate(FLOODS):
        # Each run of the others' traffic deletes tasks of its own (bench/scenario.lua).
        quiet_files = {**files, "DELETE_OFFSET": str(FIRST_DELETE_OFFSET + 2 * number * 2500)}
        quiet = metered_wrk(process, database, port, "mixed", VICTIMS, quiet_files)
        runs.append(report.measured("quiet", "mixed", VICTIMS, quiet, process))
        flooding = started_wrk(port, flood, FLOODERS, files, flood_duration)
        time.sleep(1)  # the flood under way before the others are measured
        flooded_files = {
            **files,
            "DELETE_OFFSET": str(FIRST_DELETE_OFFSET + (2 * number + 1) * 2500),
        }
        during = metered_wrk(process, database, port, "mixed", VICTIMS, flooded_files)
        name = flood.removeprefix("flood_")
        runs.append(report.measured(f"+{name}", "mixed", VICTIMS, during, process))
        runs.append(report.measured("flooder", name, FLOODERS, finished(flooding), process))
    return runs
