"""make run's supervisor: a process that exits is started again after a back-off that doubles while it
keeps failing quickly, and the restart is said."""
import subprocess
from pathlib import Path

from devtools.run import Supervisor
from tests.unit.clock import Clock


class FakeSystem:
    def __init__(self, command):
        self.command, self.log_dir, self.starts = command, Path("/tmp"), []
        self.processes = {"orgs": subprocess.Popen(command)}

    def restart(self, name):
        self.starts.append(name)
        self.processes[name] = subprocess.Popen(self.command)


def wait_exit(system):
    system.processes["orgs"].wait(5)


def test_an_exited_process_is_restarted_with_a_growing_back_off(capsys):
    # The supervisor's clock is moved by hand: no sleeping, and a slow machine cannot change the outcome.
    clock = Clock()
    system = FakeSystem(["false"])                     # exits at once, every time
    supervisor = Supervisor(system, clock)
    for expected_delay in (1, 2, 4):
        wait_exit(system)
        supervisor.check()                             # notices, schedules
        assert list(supervisor.due) == ["orgs"] and supervisor.due["orgs"] == clock.now + expected_delay
        clock.now += expected_delay - 0.01
        supervisor.check()                             # not yet due
        assert len(system.starts) == [1, 2, 4].index(expected_delay)
        clock.now += 0.01
        supervisor.check()                             # due: restarted
    assert system.starts == ["orgs"] * 3
    said = capsys.readouterr().err
    assert "orgs exited with 1; restarting it in 1 s" in said and "restarting it in 4 s" in said
    assert said.count("orgs restarted") == 3


def test_a_process_that_ran_a_minute_starts_again_from_the_first_delay():
    clock = Clock()
    system = FakeSystem(["false"])
    supervisor = Supervisor(system, clock)
    for _ in range(3):                                 # quick failures: the back-off grows to 8 s
        wait_exit(system)
        supervisor.check()
        clock.now += supervisor.due["orgs"] - clock.now
        supervisor.check()
    clock.now += Supervisor.STABLE_AFTER               # the last start ran a minute before it exited
    wait_exit(system)
    supervisor.check()
    assert supervisor.due["orgs"] == clock.now + Supervisor.FIRST_DELAY


def test_a_running_process_is_left_alone():
    system = FakeSystem(["sleep", "5"])
    supervisor = Supervisor(system, Clock())
    supervisor.check()
    assert system.starts == [] and supervisor.due == {}
    system.processes["orgs"].kill()
