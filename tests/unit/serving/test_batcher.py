"""The batcher on an event loop whose clock the test moves (no sleeps)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from modelyard.errors import DeadlineExceededError, ModelFailedError, OverloadedError
from modelyard.serving.hosting.batcher import Batcher, merge_inputs, run_mode
from modelyard.serving.hosting.outcomes import RequestRecord
from modelyard.serving.hosting.policy import AdmissionPolicy, BatchPolicy
from modelyard.serving.hosting.validation import ModelInput, Prepared


class ManualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def loop() -> Iterator[ManualClockLoop]:
    manual = ManualClockLoop()
    yield manual
    manual.close()


class Model:
    """Records each batch it is called with; the outputs echo the first column."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, model_input: ModelInput) -> dict[str, np.ndarray]:
        assert isinstance(model_input, np.ndarray)
        self.calls.append(len(model_input))
        return {"prediction": model_input[:, 0] * 10}


def record(request_id: str = "r") -> RequestRecord:
    return RequestRecord(request_id, 0.0, "m", "primary")


def rows(*values: float) -> Prepared:
    return Prepared(len(values), np.array([[v] for v in values], dtype=np.float32))


def make(
    loop: asyncio.AbstractEventLoop,
    model: Callable[[ModelInput], Any],
    *,
    size: int = 8,
    wait: float = 0.0,
    queue: int = 100,
    executor: ThreadPoolExecutor | None = None,
) -> Batcher:
    return Batcher(
        model,
        clock=loop.time,
        label="model 'm' version 1",
        policy=BatchPolicy(size, wait),
        admission=AdmissionPolicy(queue),
        loop=loop,
        executor=executor,
    )


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
    return loop.run_until_complete(coro)


async def turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_lone_request_runs_on_the_next_turn(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model, wait=0.01)

    async def scenario() -> None:
        future = batcher.submit(rows(1.0), deadline=loop.now + 1, record=record())
        assert not future.done()
        outputs, start, stop = await future
        assert (start, stop) == (0, 1)
        assert outputs["prediction"][start:stop].tolist() == [10.0]

    run(loop, scenario())
    assert model.calls == [1]


def test_requests_of_one_turn_share_a_batch(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model)

    async def scenario() -> list[list[float]]:
        futures = [
            batcher.submit(rows(*v), loop.now + 1, record()) for v in ([1.0], [2.0, 3.0], [4.0])
        ]
        results = [await f for f in futures]
        return [out["prediction"][a:b].tolist() for out, a, b in results]

    assert run(loop, scenario()) == [[10.0], [20.0, 30.0], [40.0]]
    assert model.calls == [4]


def test_batches_are_capped_at_max_batch_size(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model, size=2)

    async def scenario() -> None:
        futures = [batcher.submit(rows(float(i)), loop.now + 1, record()) for i in range(5)]
        await asyncio.gather(*futures)

    run(loop, scenario())
    assert model.calls == [2, 2, 1]


def test_under_concurrency_a_request_waits_at_most_max_wait(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model, wait=0.001)

    async def scenario() -> None:
        await asyncio.gather(
            batcher.submit(rows(1.0), loop.now + 1, record()),
            batcher.submit(rows(2.0), loop.now + 1, record()),
        )
        assert model.calls == [2]  # two requests together: now we are "under load"
        late = batcher.submit(rows(3.0), loop.now + 1, record())
        await turns()
        assert not late.done()  # waiting for company, the clock has not moved
        loop.now += 0.001
        await turns()
        assert late.done()

    run(loop, scenario())
    assert model.calls == [2, 1]


def test_a_request_past_its_deadline_is_not_run(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model, wait=0.01)

    async def scenario() -> None:
        await asyncio.gather(
            batcher.submit(rows(1.0), loop.now + 1, record()),
            batcher.submit(rows(2.0), loop.now + 1, record()),
        )
        doomed = batcher.submit(rows(3.0), deadline=loop.now + 0.005, record=record())
        loop.now += 0.02
        with pytest.raises(DeadlineExceededError, match="deadline"):
            await doomed

    run(loop, scenario())
    assert model.calls == [2]


def test_an_expired_request_is_refused_at_the_door(loop: ManualClockLoop) -> None:
    batcher = make(loop, Model())
    with pytest.raises(DeadlineExceededError, match="deadline passed"):
        batcher.submit(rows(1.0), deadline=loop.now, record=record())


def test_a_full_queue_sheds_load(loop: ManualClockLoop) -> None:
    model = Model()
    batcher = make(loop, model, queue=3)

    async def scenario() -> None:
        first = batcher.submit(rows(1.0, 2.0), loop.now + 1, record())
        assert not batcher.saturated
        with pytest.raises(OverloadedError, match="2 rows are already waiting"):
            batcher.submit(rows(3.0, 4.0), loop.now + 1, record())
        third = batcher.submit(rows(5.0), loop.now + 1, record())
        assert batcher.saturated
        await asyncio.gather(first, third)
        assert batcher.idle

    run(loop, scenario())


def test_a_model_error_fails_its_batch_only(loop: ManualClockLoop) -> None:
    calls = []

    def flaky(model_input: ModelInput) -> dict[str, np.ndarray]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {"prediction": np.zeros(2)}

    batcher = make(loop, flaky)

    async def scenario() -> None:
        futures = [batcher.submit(rows(1.0), loop.now + 1, record()) for _ in range(2)]
        for future in futures:
            with pytest.raises(ModelFailedError, match="failed on this request's batch") as info:
                await future
            assert "boom" not in info.value.message  # for the log only, not the client
            assert "RuntimeError: boom" in info.value.detail
        await batcher.submit(rows(1.0, 2.0), loop.now + 1, record())

    run(loop, scenario())


def test_threaded_model_queues_behind_a_running_batch(loop: ManualClockLoop) -> None:
    release = threading.Event()
    model = Model()

    def slow(model_input: ModelInput) -> dict[str, np.ndarray]:
        release.wait(5)
        return model(model_input)

    with ThreadPoolExecutor(1) as executor:
        batcher = make(loop, slow, executor=executor)

        async def scenario() -> None:
            first = batcher.submit(rows(1.0), loop.now + 10, record())
            await turns()
            assert batcher.running_rows == 1
            second = batcher.submit(rows(2.0), loop.now + 10, record())
            third = batcher.submit(rows(3.0), loop.now + 10, record())
            await turns()
            assert batcher.queued_rows == 2  # held while the model is busy
            release.set()
            await asyncio.gather(first, second, third)

        run(loop, scenario())
    assert model.calls == [1, 2]


def test_threaded_model_answers_504_when_the_deadline_passes(loop: ManualClockLoop) -> None:
    release = threading.Event()

    def slow(model_input: ModelInput) -> dict[str, np.ndarray]:
        release.wait(5)
        return {"prediction": np.zeros(len(model_input))}

    with ThreadPoolExecutor(1) as executor:
        batcher = make(loop, slow, executor=executor)

        async def scenario() -> None:
            stuck = batcher.submit(rows(1.0), loop.now + 0.05, record())
            await turns()
            loop.now += 0.1
            await turns()
            with pytest.raises(DeadlineExceededError):
                await stuck
            release.set()
            while not batcher.idle:
                await asyncio.sleep(0)  # the done callback arrives from the model thread

        run(loop, scenario())


def test_merge_inputs_of_columns() -> None:
    merged = merge_inputs(
        [
            {"a": np.array([1]), "b": np.array(["x"], dtype=object)},
            {"a": np.array([2]), "b": np.array(["y"], dtype=object)},
        ]
    )
    assert isinstance(merged, dict)
    assert merged["a"].tolist() == [1, 2]
    assert merged["b"].tolist() == ["x", "y"]


def test_run_mode() -> None:
    assert run_mode(0.0001) == "loop"
    assert run_mode(0.01) == "thread"


def test_the_listener_sees_each_requests_rows_before_the_answers(loop: ManualClockLoop) -> None:
    seen: list[list[tuple[Any, int, int]]] = []

    def listen(
        requests: list[tuple[Any, int, int]], model_input: Any, outputs: Any, seconds: float
    ) -> None:
        assert not any(f.done() for f in futures)  # nobody has been answered yet
        seen.append(requests)

    batcher = Batcher(
        Model(),
        label="m",
        policy=BatchPolicy(8, 0),
        admission=AdmissionPolicy(100),
        loop=loop,
        clock=loop.time,
        listen=listen,
    )
    futures = [
        batcher.submit(rows(1.0, 2.0), loop.now + 1, record("a")),
        batcher.submit(rows(3.0), loop.now + 1, record("b")),
    ]
    run(loop, asyncio.gather(*futures))
    assert [[(r.request_id, a, b) for r, a, b in batch] for batch in seen] == [
        [("a", 0, 2), ("b", 2, 3)]
    ]


def test_a_listener_refusal_fails_the_batch_with_its_error(loop: ManualClockLoop) -> None:
    def full(*args: Any) -> None:
        raise OverloadedError("the inference log is full")

    batcher = Batcher(
        Model(),
        label="m",
        policy=BatchPolicy(8, 0),
        admission=AdmissionPolicy(100),
        loop=loop,
        clock=loop.time,
        listen=full,
    )

    async def scenario() -> None:
        with pytest.raises(OverloadedError, match="inference log is full"):
            await batcher.submit(rows(1.0), loop.now + 1, record())

    run(loop, scenario())


class Executors:
    """A ``new_executor`` that remembers the executors it made (shut down at the end)."""

    def __init__(self) -> None:
        self.made: list[ThreadPoolExecutor] = []

    def __call__(self) -> ThreadPoolExecutor:
        self.made.append(ThreadPoolExecutor(1))
        return self.made[-1]

    def close(self) -> None:
        for executor in self.made:
            executor.shutdown(wait=True)


def hangs_on_first_column_above(release: threading.Event) -> Callable[[ModelInput], Any]:
    """A model that blocks until ``release`` on a batch with a value above 100."""

    def model(model_input: ModelInput) -> dict[str, np.ndarray]:
        assert isinstance(model_input, np.ndarray)
        if (model_input[:, 0] > 100).any():
            release.wait(10)
        return {"prediction": model_input[:, 0] * 10}

    return model


async def answered(future: asyncio.Future[Any]) -> None:
    while not future.done():
        await asyncio.sleep(0)  # the model thread's answer arrives through the loop


def test_requests_queued_behind_a_stuck_call_are_answered_504_at_their_deadline(
    loop: ManualClockLoop,
) -> None:
    release = threading.Event()
    with ThreadPoolExecutor(1) as executor:
        batcher = make(loop, hangs_on_first_column_above(release), executor=executor)

        async def scenario() -> None:
            stuck = batcher.submit(rows(500.0), loop.now + 0.05, record())
            await turns()
            queued = batcher.submit(rows(1.0), loop.now + 0.08, record())
            loop.now += 0.06
            await turns()
            with pytest.raises(DeadlineExceededError):
                await stuck
            assert not queued.done()  # no spare thread here: it waits for its own deadline
            loop.now += 0.03
            await turns()
            with pytest.raises(DeadlineExceededError, match="could not answer before"):
                await queued
            assert batcher.queued_rows == 0
            assert batcher.oldest_call_started() == 1000.0
            release.set()
            while not batcher.idle or batcher.oldest_call_started() is not None:
                await asyncio.sleep(0)

        run(loop, scenario())


def test_a_call_stuck_past_its_deadline_is_abandoned_for_a_fresh_thread(
    loop: ManualClockLoop,
) -> None:
    release = threading.Event()
    executors = Executors()
    batcher = Batcher(
        hangs_on_first_column_above(release),
        clock=loop.time,
        label="model 'm' version 1",
        policy=BatchPolicy(8, 0.0),
        admission=AdmissionPolicy(100),
        loop=loop,
        executor=executors(),
        new_executor=executors,
    )

    async def scenario() -> None:
        stuck = batcher.submit(rows(500.0), loop.now + 0.05, record())
        await turns()
        loop.now += 0.03
        assert batcher.running_for(loop.now) == pytest.approx(0.03)
        loop.now += 0.03
        await turns()
        with pytest.raises(DeadlineExceededError):
            await stuck
        assert len(executors.made) == 2  # the stuck thread is not used again
        assert batcher.running_for(loop.now) == 0.0  # the abandoned call is not "running"
        fine = batcher.submit(rows(2.0), loop.now + 0.05, record())
        await answered(fine)
        outputs, start, stop = fine.result()
        assert outputs["prediction"][start:stop].tolist() == [20.0]
        assert batcher.oldest_call_started() == 1000.0  # the abandoned call still runs
        release.set()
        while batcher.oldest_call_started() is not None:
            await asyncio.sleep(0)

    try:
        run(loop, scenario())
    finally:
        release.set()
        executors.close()


def test_spare_threads_are_bounded_then_requests_wait_and_expire(loop: ManualClockLoop) -> None:
    release = threading.Event()
    executors = Executors()
    batcher = Batcher(
        hangs_on_first_column_above(release),
        clock=loop.time,
        label="model 'm' version 1",
        policy=BatchPolicy(8, 0.0),
        admission=AdmissionPolicy(100),
        loop=loop,
        executor=executors(),
        new_executor=executors,
    )

    async def scenario() -> None:
        for _ in range(4):
            stuck = batcher.submit(rows(500.0), loop.now + 0.05, record())
            await turns()
            loop.now += 0.06
            await turns()
            with pytest.raises(DeadlineExceededError):
                await stuck
        assert len(executors.made) == 3  # the first thread and two spares, no more
        release.set()
        while batcher.oldest_call_started() is not None:
            await asyncio.sleep(0)

    try:
        run(loop, scenario())
    finally:
        release.set()
        executors.close()


def test_an_inline_call_that_overran_moves_the_model_to_a_thread(loop: ManualClockLoop) -> None:
    executors = Executors()
    model = Model()
    batcher = Batcher(
        model,
        clock=loop.time,
        label="model 'm' version 1",
        policy=BatchPolicy(8, 0.0),
        admission=AdmissionPolicy(100),
        loop=loop,
        new_executor=executors,
        request_timeout_s=1e-12,  # any call overruns a tenth of this
    )

    async def scenario() -> None:
        assert not batcher.threaded
        await batcher.submit(rows(1.0), loop.now + 1, record())
        assert batcher.threaded
        await batcher.submit(rows(2.0), loop.now + 1, record())

    try:
        run(loop, scenario())
    finally:
        executors.close()
    assert model.calls == [1, 1]
    assert len(executors.made) == 1
