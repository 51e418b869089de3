"""make run's supervisor: a process that exits is started again after a back-off that doubles while it
keeps failing quickly, and the restart is said."""
import subprocess
import time
from pathlib import Path

from devtools.run import Supervisor


class FakeSystem:
    def __init__(self, command):
        self.command, self.log_dir, self.starts = command, Path("/tmp"), []
        self.processes = {"orgs": subprocess.Popen(command)}

    def restart(self, name):
        self.starts.append(name)
        self.processes[name] = subprocess.Popen(self.command)


def wait_exit(system):
    system.processes["orgs"].wait(5)


def test_an_exited_process_is_restarted_with_a_growing_back_off(capsys, monkeypatch):
    system = FakeSystem(["false"])                     # exits at once, every time
    supervisor = Supervisor(system)
    monkeypatch.setattr(Supervisor, "FIRST_DELAY", 0.05)
    for expected_delay in (0.05, 0.1, 0.2):
        wait_exit(system)
        supervisor.check()                             # notices, schedules
        assert supervisor.due and system.starts.count("orgs") == len(system.starts)
        time.sleep(expected_delay + 0.02)
        supervisor.check()                             # due: restarted
    assert system.starts == ["orgs"] * 3
    said = capsys.readouterr().err
    assert "orgs exited with 1; restarting it in 0.05 s" in said and "restarting it in 0.2 s" in said
    assert said.count("orgs restarted") == 3


def test_a_running_process_is_left_alone():
    system = FakeSystem(["sleep", "5"])
    supervisor = Supervisor(system)
    supervisor.check()
    assert system.starts == [] and supervisor.due == {}
    system.processes["orgs"].kill()
