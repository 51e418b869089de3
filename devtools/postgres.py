"""A throwaway PostgreSQL cluster for tests and benchmarks."""
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devtools.system import free_port


class PostgresCluster:
    """A throwaway PostgreSQL cluster from the installed binaries (initdb + pg_ctl), trust auth on
    loopback. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user."""

    def __init__(self, count_statements=False):
        """`count_statements`: load pg_stat_statements, so a benchmark can count the statements (round trips)
        each database received (bench/spend_targets.py)."""
        self.count_statements = count_statements
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL server binaries not found; run scripts/setup.sh --with-postgres")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="orgplatform-pg-"))
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o755)

    def run(self, *args, **kwargs):
        return subprocess.run([*self.as_user, *args], check=True, stdout=subprocess.DEVNULL, **kwargs)

    def start(self):
        data = self.dir / "data"
        self.run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
                 f"-c fsync=off{self._preload()}", "start")
        return self

    def _preload(self):
        return " -c shared_preload_libraries=pg_stat_statements" if self.count_statements else ""

    def create_database(self, name):
        self.run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast",
                        "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)
