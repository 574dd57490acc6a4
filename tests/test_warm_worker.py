"""The warm framework process (studio.warm) and the GUI's use of it (widgets.warm_worker).

Each warm process imports torch and TensorFlow for real, so all but the unit
tests are slow. They check what the user relies on: a command in the warm
process answers exactly as the command line does, with its stages as they
begin; a training run that takes the spare over trains and reports like a
spawned one; a dead or cancelled process is replaced; the GUI's Verify uses
the warm process and shows the proof's stages.
"""

from __future__ import annotations

import json
import os
import queue
import time

import pytest

from studio.project import save_project
from studio.templates import create_project
from studio.warm import PROGRESS_PREFIX, WarmProcess, _ProgressStream

WARM_TIMEOUT = 300


def wait_for(predicate, timeout: float = WARM_TIMEOUT, poll=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if poll is not None:
            poll()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def iris_project(tmp_path):
    path = tmp_path / "iris.layers.json"
    save_project(create_project("mlp_iris"), path)
    return path


def test_progress_lines_are_forwarded_at_once_and_the_rest_kept():
    replies = queue.Queue()
    stream = _ProgressStream(7, replies)
    stream.write("warning: one\n" + PROGRESS_PREFIX + "1/3 Build")
    assert replies.empty()  # the line is not complete yet
    stream.write(" both\nerror: last")
    assert replies.get_nowait() == {"kind": "progress", "id": 7, "text": "1/3 Build both"}
    assert stream.getvalue() == "warning: one\nerror: last"


def test_a_process_that_is_not_ready_refuses_requests():
    process = WarmProcess()  # never started
    assert not process.can_train and not process.idle
    with pytest.raises(RuntimeError, match="not ready"):
        process.send_command(["summary", "x"])
    with pytest.raises(RuntimeError, match="cannot take"):
        process.take({})


@pytest.mark.slow
def test_commands_answer_as_the_command_line_does_and_training_takes_a_fresh_spare_over(
    iris_project, tmp_path
):
    from studio.training import RunConfig, TrainingRun

    service = WarmProcess(prime=True)
    service.start()
    try:
        wait_for(lambda: service.ready, poll=service.poll)
        assert not service.can_train  # primed: TensorFlow's runtime is initialised

        replies = []
        service.send_command(["verify", str(iris_project), "--json", "--skip-main", "--progress"])
        wait_for(
            lambda: any(r["kind"] == "done" for r in replies), poll=lambda: replies.extend(service.poll())
        )
        stages = [r["text"] for r in replies if r["kind"] == "progress"]
        done = replies[-1]
        assert done["exit_code"] == 0, done["stderr"]
        assert json.loads(done["stdout"])["ok"] is True
        assert stages[0].startswith("1/4 Build both models") and stages[-1].startswith("4/4 Train 5 steps")
        assert PROGRESS_PREFIX not in done["stderr"]

        # A bad request is answered, and the process serves the next one.
        replies.clear()
        service.send_command(["summary", str(tmp_path / "missing.layers.json")])
        wait_for(lambda: replies, poll=lambda: replies.extend(service.poll()))
        assert replies[0]["exit_code"] == 2 and "missing.layers.json" in replies[0]["stderr"]
        assert service.idle
    finally:
        service.stop()

    spare = WarmProcess()
    spare.start()
    wait_for(lambda: spare.ready, poll=spare.poll)
    assert spare.can_train
    config = RunConfig.from_project(str(iris_project), "pytorch", epochs=2, out_dir=str(tmp_path / "run"))
    run = TrainingRun(config, warm=spare)
    run.start()
    assert run.pid == spare.pid and spare.handed_over and not spare.can_train
    run.wait(timeout=WARM_TIMEOUT)
    assert run.outcome["type"] == "finished", run.outcome
    epochs = [m for m in run.messages if m.get("type") == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    run.close()
    spare.stop()  # a run owns it now: stop() leaves it alone
    assert not spare.alive


@pytest.mark.slow
def test_gui_verify_runs_in_the_warm_process_shows_its_stages_and_survives_a_dead_worker(qtbot, tmp_path):
    from widgets.document import Document
    from widgets.verify_panel import Verifier, VerifyPanel
    from widgets.warm_worker import WarmWorker

    worker = WarmWorker()
    worker.start_soon(0)
    try:
        qtbot.waitUntil(lambda: worker.service_ready, timeout=WARM_TIMEOUT * 1000)
        document = Document()
        document.set_project(create_project("lenet_digits"))
        verifier = Verifier(warm=worker)
        panel = VerifyPanel()
        verifier.stage.connect(panel.show_stage)
        with qtbot.waitSignal(verifier.finished, timeout=WARM_TIMEOUT * 1000) as finished:
            verifier.start(document.project)
        assert verifier.warm_used
        assert finished.args[0].ok, finished.args[0].error
        assert panel.stages[0].startswith("Build both models") and len(panel.stages) == 4

        # The service dies mid-proof: the proof says so, and a fresh service warms up.
        old_pid = worker.service.pid
        with qtbot.waitSignal(verifier.finished, timeout=WARM_TIMEOUT * 1000) as finished:
            verifier.start(document.project)
            os.kill(old_pid, 9)
        assert not finished.args[0].ok and "ended unexpectedly" in finished.args[0].error
        qtbot.waitUntil(lambda: worker.service_ready, timeout=WARM_TIMEOUT * 1000)
        assert worker.service.pid != old_pid

        # Cancel kills the service and the next proof runs again.
        verifier.start(document.project)
        verifier.cancel()
        assert verifier.result.cancelled and not verifier.is_running
    finally:
        worker.shutdown()
