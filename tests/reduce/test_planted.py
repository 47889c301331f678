"""The reference server's planted interaction bugs (`imgtrace serve --plant`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from reduce_support import FAST, png

from imgtrace._server._config import ServerConfig
from imgtrace._server._engine import Job
from imgtrace._server._errors import ApiError
from imgtrace._server._params import parse_edit_form
from imgtrace._server._planted import Planted, parse_plant
from traces import FormPartData, UsageError


def request(seed: int = 1) -> Any:
    return parse_edit_form(
        [
            FormPartData(name="prompt", data=b"p"),
            FormPartData(name="seed", data=str(seed).encode()),
            FormPartData(name="image", data=png(8), filename="a.png"),
        ]
    )


def planted(*specs: str, **config: Any) -> Planted:
    return Planted(ServerConfig(plant=tuple(parse_plant(s) for s in specs), **config))


def test_mask_after_another_size_within_the_window_fails() -> None:
    bugs = planted("mask-after-size:1", speed=1e9)  # a window of 1 ns: never within it
    bugs.arrive(request(), Job(1024, 1024, 4, 1), masked=False)
    assert not bugs.arrive(request(), Job(512, 512, 4, 1), masked=True).error
    bugs = planted("mask-after-size:60")
    assert not bugs.arrive(request(), Job(512, 512, 4, 1), masked=True).error
    bugs.arrive(request(), Job(512, 512, 4, 1), masked=False)
    assert not bugs.arrive(request(), Job(512, 512, 4, 1), masked=True).error  # same size
    assert not bugs.arrive(request(), Job(1024, 1024, 4, 1), masked=False).error  # no mask
    effect = bugs.arrive(request(), Job(512, 512, 4, 1), masked=True)
    with pytest.raises(ApiError) as caught:
        effect.check()
    assert caught.value.status == 500


def test_slowdown_after_n_concurrent_big_edits_lasts_until_reset() -> None:
    bugs = planted("slow-after-concurrent:2:8")
    first = Job(1024, 1024, 4, 1)
    assert bugs.arrive(request(), first, masked=False).slow_factor == 1
    first.finished = 1.0  # done before the next one: not concurrent
    assert bugs.arrive(request(), Job(1024, 1024, 4, 1), masked=False).slow_factor == 1
    assert bugs.arrive(request(), Job(1024, 1024, 4, 1), masked=False).slow_factor == 8
    assert bugs.arrive(request(), Job(512, 512, 4, 1), masked=False).slow_factor == 8
    bugs.reset()
    assert bugs.arrive(request(), Job(512, 512, 4, 1), masked=False).slow_factor == 1


def test_image_changes_after_the_seed_until_reset() -> None:
    bugs = planted("image-after-seed:42")
    job = Job(512, 512, 4, 1)
    assert bugs.arrive(request(7), job, masked=False).rendered(request(7)).seed == 7
    assert bugs.arrive(request(42), job, masked=False).seed_shift == 0
    assert bugs.arrive(request(7), job, masked=False).rendered(request(7)).seed == 8
    bugs.reset()
    assert bugs.arrive(request(7), job, masked=False).seed_shift == 0


def test_plant_rate_makes_a_bug_flaky_and_reproducible() -> None:
    def fired(seed: int) -> list[bool]:
        bugs = planted("image-after-seed:1", plant_rate=0.5, random_seed=seed)
        bugs.arrive(request(1), Job(8, 8, 4, 1), masked=False)
        return [
            bool(bugs.arrive(request(2), Job(8, 8, 4, 1), masked=False).seed_shift)
            for _ in range(200)
        ]

    draws = fired(3)
    assert 60 < sum(draws) < 140
    assert fired(3) == draws


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("boom", "use one of mask-after-size"),
        ("slow-after-concurrent", "give its value"),
        ("slow-after-concurrent:0", "whole number >= 1"),
        ("mask-after-size:x", "must be numbers"),
        ("image-after-seed:1.5", "whole number"),
        ("image-after-seed:1:2", "takes one value"),
    ],
)
def test_bad_plants_are_refused(spec: str, expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        parse_plant(spec)


def test_plant_rate_is_checked() -> None:
    with pytest.raises(UsageError, match="--plant-rate"):
        ServerConfig(plant_rate=0)


def test_served_bug_and_reset_route(spawn_server: Callable[..., Any]) -> None:
    server = spawn_server(*FAST, "--plant", "image-after-seed:5")
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def edit(seed: int) -> str:
            response = client.post(
                "/v1/images/edits",
                data={"prompt": "p", "seed": str(seed), "size": "64x64"},
                files={"image": ("a.png", png(16), "image/png")},
            )
            response.raise_for_status()
            return str(response.json()["data"][0]["b64_json"])

        clean = edit(1)
        assert edit(1) == clean
        edit(5)
        assert edit(1) != clean
        assert client.post("/v1/planted/reset").json() == {"reset": True}
        assert edit(1) == clean
