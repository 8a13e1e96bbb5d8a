"""A one-node SLURM cluster on this machine, for tests: install, configure, start, stop.

Debian's Slurm (slurm-wlm) and MUNGE run as root, in the foreground as children of the test, so the test
knows their PIDs and stops exactly those. There is no slurmdbd: jobs are followed with squeue, and a long
MinJobAge keeps finished jobs listed. The node declares one fake GPU (gres ``gpu:fake:1`` backed by
/dev/null), so jobs that ask for a GPU schedule on a machine without one. Two partitions share the node:
``cpu`` (the default, named like profiles/slurm's default partition) and ``gpu``.

The configuration must live at /etc/slurm/slurm.conf: the jobstep plugin drops ``SLURM_CONF`` from the
environment before the ``srun`` inside each job, which then reads only the default path. Whatever was
there before is put back on stop.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
CONF_DIR = Path("/etc/slurm")
LOCK = Path("/tmp/dlperf-slurm-cluster.lock")  # one test cluster per machine: /etc/slurm and the ports are shared


class ClusterError(RuntimeError):
    """The cluster could not be installed or started; the message holds the relevant log tail."""


class ClusterBusy(ClusterError):
    """Another test cluster runs on this machine (it holds LOCK)."""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def install(timeout: float = 300) -> None:
    """apt-get install Slurm and MUNGE (as root). Services are not started: Debian's policy-rc.d, where the
    machine has one, forbids it, and ours are started by `Cluster.start` anyway."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold"]
    for cmd in (["apt-get", "-q", "update"], [*apt, "install", *PACKAGES]):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}")
    if missing := missing_binaries():
        raise ClusterError(f"installed {' '.join(PACKAGES)}, still missing: {', '.join(missing)}")


def free_ports(n: int) -> list[int]:
    """n distinct unused TCP ports: the cluster does not collide with a SLURM already on the default ones."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def node_hardware() -> str:
    """``slurmd -C``'s description of this machine (CPUs, sockets, cores, memory), less its NodeName."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    return " ".join(word for word in line.split() if not word.startswith(("NodeName=", "UpTime=")))


def slurm_conf(base: Path, host: str, hardware: str, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
# Written by dlperf's tests/slurm_cluster.py for a test cluster; restored or removed when it stops.
ClusterName=dlperftest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={base}/munge/munge.socket.2
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
# No cgroups, no accounting: nothing to set up beyond these two daemons.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to squeue (the job status command without slurmdbd) for 10 minutes.
MinJobAge=600
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 {hardware} Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


def gres_conf(host: str) -> str:
    # Without File=, slurmd reports 0 GPUs and the node goes INVAL; /dev/null makes one schedulable fake GPU.
    return f"NodeName={host} Name=gpu Type=fake File=/dev/null\n"


@dataclass
class Cluster:
    """`start()` starts munged, slurmctld and slurmd (`daemons`: name -> process, with its PID); `stop()` cancels
    what jobs are left and ends those three processes, by PID."""

    base: Path
    host: str = field(default_factory=socket.gethostname)
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)
    _saved: dict[Path, bytes | None] = field(default_factory=dict)
    _lock: object = None

    def start(self, timeout: float = 60) -> None:
        self._lock = open(LOCK, "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise ClusterBusy(f"another test cluster holds {LOCK}") from None
        try:
            self._configure()
            self._start_munged(timeout)
            self._start("slurmctld", ["slurmctld", "-D", "-f", str(CONF_DIR / "slurm.conf")])
            self._wait("slurmctld answering", lambda: self._run("scontrol", "ping").returncode == 0, timeout)
            self._start("slurmd", ["slurmd", "-D", "-f", str(CONF_DIR / "slurm.conf")])
            node_states = lambda: set(self._run("sinfo", "-h", "-N", "-o", "%T").stdout.split())  # noqa: E731
            self._wait("node idle", lambda: node_states() == {"idle"}, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 20) -> None:
        """Cancel the jobs still queued or running (a test that failed midway leaves some), stop the daemons this
        cluster started (slurmd first), then put /etc/slurm back as it was."""
        if "slurmctld" in self.daemons and self._run("scancel", "--user=root").returncode == 0:
            with contextlib.suppress(ClusterError):
                self._wait("jobs cancelled", lambda: not any(job["JobState"] in ("PENDING", "RUNNING", "COMPLETING")
                                                             for job in self.jobs()), timeout)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.daemons.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        for path, content in self._saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        self._saved.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def log_tails(self, lines: int = 30) -> str:
        """The end of each daemon's log, for a failure message."""
        parts = []
        for log in sorted((self.base / "log").glob("*.log")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def jobs(self) -> list[dict[str, str]]:
        """The fields (JobId, JobState, Partition, Comment, TresPerJob, ...) of every job the controller knows,
        finished ones included for MinJobAge, from `scontrol show job --oneliner`."""
        out = self._run("scontrol", "show", "job", "--oneliner")
        if out.returncode != 0:
            raise ClusterError(f"scontrol show job failed: {out.stderr}")
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.stdout.splitlines() if line.startswith("JobId=")]

    # ---- internals --------------------------------------------------------------------------------------------
    def _configure(self) -> None:
        if self.base.exists():
            shutil.rmtree(self.base)  # a fresh state directory: no jobs from an earlier run
        for sub in ("munge", "state", "spool", "log", "run"):
            (self.base / sub).mkdir(parents=True)
        (self.base / "munge").chmod(0o711)  # munged refuses a socket directory others can write to
        key = self.base / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        CONF_DIR.mkdir(exist_ok=True)
        ctld_port, slurmd_port = free_ports(2)
        conf = slurm_conf(self.base, self.host, node_hardware(), ctld_port, slurmd_port)
        files = {
            CONF_DIR / "slurm.conf": conf,
            CONF_DIR / "gres.conf": gres_conf(self.host),  # slurmd reads it beside slurm.conf
        }
        for path, text in files.items():
            self._saved.setdefault(path, path.read_bytes() if path.exists() else None)
            path.write_text(text)

    def _start_munged(self, timeout: float) -> None:
        munge = self.base / "munge"
        self._start("munged", ["munged", "--foreground", "--force", f"--socket={munge}/munge.socket.2",
                               f"--key-file={munge}/munge.key", f"--pid-file={self.base}/run/munged.pid",
                               f"--log-file={self.base}/log/munged.log", f"--seed-file={munge}/munged.seed"])
        self._wait("munge socket", (munge / "munge.socket.2").exists, timeout)

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.base / "log" / f"{name}.out", "w")
        self.daemons[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.daemons.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited ({proc.returncode}) before {what}:\n{self.log_tails()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"no {what} after {timeout:.0f} s:\n{self.log_tails()}")
            time.sleep(0.5)

    @staticmethod
    def _run(*cmd: str) -> subprocess.CompletedProcess:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return subprocess.CompletedProcess(cmd, 124, "", f"{cmd[0]}: timed out")
