"""worker.py --devices: device allocation as plain functions, refusals with a clear reason, the Train tab's
processes setting, and one real run in which two fake devices let two tiny jobs train at once."""

from __future__ import annotations

import os

import pytest
import torch

import worker
import worker_devices
from storage import repo
from ui import train_jobs
from ui.common import Ctx, Settings
from worker_devices import DevicePool, devices_needed, parse_devices, too_many


def view(sessions, job_id: int) -> dict:
    with sessions() as s:
        return repo.job_view(s, job_id)


def job_row(sessions, job_id: int):
    with sessions() as s:
        return repo.get_job(s, job_id)


# --- plain functions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, []), ("", []), ("0,1,2,3", ["0", "1", "2", "3"]), (" 2, 5 ", ["2", "5"]), ("GPU-ab", ["GPU-ab"])],
)
def test_parse_devices_lists(spec, expected):
    assert parse_devices(spec) == expected


@pytest.mark.parametrize("spec", ["0,0", "0,,1", ","])
def test_parse_devices_refuses_repeated_or_empty_ids(spec):
    with pytest.raises(ValueError, match="distinct device ids"):
        parse_devices(spec)


def test_auto_is_no_devices_on_a_cpu_host(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse_devices("auto") == []  # so the worker stays today's: one job at a time, in process


def test_auto_names_the_visible_cuda_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert parse_devices("AUTO") == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # a child must get the host's ids, not 0..n-1
    assert parse_devices("auto") == ["3", "5"]


def test_pool_lends_n_devices_and_takes_them_back_in_order():
    pool = DevicePool(["0", "1", "2", "3"])
    first, second = pool.take(1), pool.take(2)
    assert (first, second, pool.free) == (["0"], ["1", "2"], ["3"])
    assert pool.take(2) is None and pool.free == ["3"]  # too few free: nothing lent
    pool.give(first)
    assert pool.free == ["0", "3"]
    pool.give(second)
    assert pool.take(4) == ["0", "1", "2", "3"]


class FakeJob:
    def __init__(self, kind: str, config: dict):
        self.kind, self.config = kind, config


def test_devices_needed_is_a_train_jobs_nproc_else_one():
    assert devices_needed(FakeJob("train", {"nproc": 3})) == 3
    assert devices_needed(FakeJob("train", {})) == 1  # jobs queued before the setting existed
    assert devices_needed(FakeJob("score", {"nproc": 3})) == 1


def test_too_many_names_the_devices_and_the_setting():
    assert too_many(2, ["0", "1"]) is None
    reason = too_many(3, ["0", "1"])
    assert "asks for 3 processes" in reason and "--devices 0,1" in reason and "Processes (GPUs)" in reason


def test_a_child_sees_only_its_devices_and_the_workers_database():
    env = worker_devices.child_env(["2", "3"], "sqlite:////tmp/x.db")
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["DATABASE_URL"] == "sqlite:////tmp/x.db"


# --- refusals ----------------------------------------------------------------------------------------------------


def test_a_job_needing_more_devices_than_the_worker_has_fails_saying_so(sessions, make_job, data_dir):
    job_id = make_job(nproc=3)
    worker.work(sessions, data_dir / "models", poll_s=0.05, once=True, devices=["0", "1"])
    v = view(sessions, job_id)
    assert v["status"] == "failed"
    assert "asks for 3 processes" in v["error"] and "2 device(s)" in v["error"]


def test_an_nproc_job_on_a_host_with_fewer_gpus_fails_saying_so(sessions, make_job, data_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    job_id = make_job(nproc=2)
    with sessions() as s:
        assert repo.claim_next_job(s, os.getpid()).id == job_id
    assert worker.run_job(sessions, job_id, data_dir / "models") == "failed"
    error = view(sessions, job_id)["error"]
    assert "asks for 2 processes" in error and "sees 1 GPU(s)" in error


# --- the scheduling loop, with fake children --------------------------------------------------------------------


class FakeChildren:
    """Stands in for subprocess.Popen in worker_devices: each child "runs" for a few polls, then ends its job
    (completed, unless not `finish`) and exits `code`, recording what it was started with."""

    def __init__(self, sessions, code: int = 0, finish: bool = True):
        self.sessions, self.code, self.finish, self.events = sessions, code, finish, []

    def __call__(self, cmd, env):
        children = self

        class Child:
            job_id = int(cmd[cmd.index("--run-job") + 1])
            attempt = int(cmd[cmd.index("--attempt") + 1])
            polls = 0

            def poll(self):
                self.polls += 1
                if self.polls < 3:
                    return None
                if self.polls == 3:
                    if children.finish:
                        with children.sessions() as s:
                            repo.finish_job(s, self.job_id, {}, "", attempt=self.attempt)
                    children.events.append(("end", self.job_id))
                return children.code

            def terminate(self):
                pass

        self.events.append(("start", Child.job_id, env["CUDA_VISIBLE_DEVICES"]))
        return Child()


def test_a_job_needing_two_devices_waits_until_two_are_free(sessions, make_job, data_dir, monkeypatch):
    children = FakeChildren(sessions)
    monkeypatch.setattr(worker_devices.subprocess, "Popen", children)
    one, two, three = make_job(), make_job(nproc=2), make_job()
    worker.work(sessions, data_dir / "models", poll_s=0.01, once=True, devices=["0", "1"])
    assert children.events == [
        (
            "start",
            one,
            "0",
        ),  # job two was claimed next: it needs both devices, so it waits (queue order kept)
        ("end", one),
        ("start", two, "0,1"),
        ("end", two),
        ("start", three, "0"),
        ("end", three),
    ]
    assert all(view(sessions, j)["status"] == "completed" for j in (one, two, three))


@pytest.mark.parametrize("code", [-9, 0])  # 0: a child ended by SIGTERM exits 0 with its job unfinished
def test_a_child_that_dies_leaves_its_job_interrupted_saying_so(
    sessions, make_job, data_dir, monkeypatch, code
):
    monkeypatch.setattr(worker_devices.subprocess, "Popen", FakeChildren(sessions, code=code, finish=False))
    job_id = make_job()
    worker.work(sessions, data_dir / "models", poll_s=0.01, once=True, devices=["0"])
    v = view(sessions, job_id)
    assert v["status"] == "interrupted" and f"exit code {code}" in v["message"]


def test_the_devices_flag_refuses_a_bad_list(capsys):
    with pytest.raises(SystemExit) as exc:
        worker.main(["--devices", "0,0", "--nice", "0"])
    assert exc.value.code == 2 and "distinct device ids" in capsys.readouterr().err


# --- the Train tab's setting ---------------------------------------------------------------------------------------


@pytest.fixture
def ctx(sessions, data_dir) -> Ctx:
    return Ctx(
        Settings(data_dir=data_dir, model_overrides={"num_hidden_layers": 1}, start_worker=False), sessions
    )


def start(ctx, dataset_id, **form):
    values = {**train_jobs.FORM_DEFAULTS, "mode": "frozen", "epochs": 1, **form}
    return train_jobs.start_job(ctx, dataset_id, *(values[f] for f in train_jobs.FORM_FIELDS))


def test_the_processes_setting_is_written_into_the_job_config(ctx, make_dataset, sessions):
    ds = make_dataset()
    default, two = start(ctx, ds), start(ctx, ds, nproc=2)
    assert default["ok"] and two["ok"], (default, two)
    assert job_row(sessions, default["job_id"]).config["nproc"] == 1
    assert job_row(sessions, two["job_id"]).config["nproc"] == 2


@pytest.mark.parametrize("nproc", [0, 17, 2.5, "two"])
def test_the_processes_setting_refuses_outside_1_to_16(ctx, make_dataset, nproc):
    r = start(ctx, make_dataset(), nproc=nproc)
    assert not r["ok"] and "Processes (GPUs)" in r["message"] and "1 to 16" in r["message"]


# --- a real run: two fake devices, two jobs at once ------------------------------------------------------------------


def test_two_devices_run_two_jobs_at_once_each_in_its_own_process(sessions, make_job, data_dir):
    first, second = make_job(mode="frozen"), make_job(mode="frozen")  # 1 epoch: the overlap is what counts
    # CUDA_VISIBLE_DEVICES strings only: no GPU needed, the children train on the CPU
    worker.work(sessions, data_dir / "models", poll_s=0.1, once=True, devices=["fake-a", "fake-b"])
    a, b = job_row(sessions, first), job_row(sessions, second)
    assert (a.status, b.status) == ("completed", "completed"), (a.error, b.error)
    # overlap: each job was claimed before the other one finished (one at a time, the second starts after)
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    assert (
        a.worker_pid == b.worker_pid == os.getpid()
    )  # the claims name the main worker; children hold leases
