"""data.download=true against a real HTTP server on 127.0.0.1 serving tiny files in the real formats."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from datafiles import write_cifar, write_mnist

from lth.data.download import fetch
from lth.data.vision import IDX_FILES, CIFAR10DataModule, CIFAR100DataModule, MNISTDataModule
from lth.errors import ConfigError
from lth.run.job import run

MEAN, STD = [0.1307], [0.3081]
GZ = [name + ".gz" for name in IDX_FILES]


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves the mirror's directory; ``/cut/<path>`` sends the headers of ``<path>`` but half its body."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        body = Path(self.directory, self.path.removeprefix("/cut/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class Mirror:
    """A directory served over HTTP on 127.0.0.1, and the paths it was asked for."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(MirrorHandler, directory=str(directory)))
        self.server.requests = []  # type: ignore[attr-defined]
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def requests(self) -> list[str]:
        return self.server.requests  # type: ignore[attr-defined]


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mirror]:
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a configured proxy must not see localhost requests
    served = Mirror(tmp_path / "www")
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def dead_url() -> str:
    """A localhost URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def md5_of(directory: Path, names: list[str]) -> dict[str, str]:
    return {name: hashlib.md5((directory / name).read_bytes()).hexdigest() for name in names}


def leftovers(directory: Path) -> list[Path]:
    """Temp files or directories a download left behind (names starting with a dot)."""
    return [p for p in directory.rglob(".*")]


def test_mnist_download_skips_dead_mirrors_and_loads(mirror: Mirror, tmp_path: Path) -> None:
    written = write_mnist(mirror.directory / "mnist", train=40, test=10)
    mirrors = [dead_url(), f"{mirror.base}/missing/", f"{mirror.base}/cut/mnist/", f"{mirror.base}/mnist/"]
    root = tmp_path / "root"
    data = MNISTDataModule(
        str(root),
        10,
        8,
        0,
        MEAN,
        STD,
        download=True,
        mirrors=mirrors,
        md5=md5_of(mirror.directory / "mnist", GZ),
    )
    data.setup()
    # each file: 404 from /missing/, a transfer cut short from /cut/, then the good mirror
    assert mirror.requests == [f"/{sub}/{name}" for name in GZ for sub in ("missing", "cut/mnist", "mnist")]
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(GZ)
    assert all((raw / n).read_bytes() == (mirror.directory / "mnist" / n).read_bytes() for n in GZ)
    assert leftovers(root) == []
    assert data.split("train")[0].shape == (30, 1, 28, 28)
    assert torch.equal(data.split("test")[1], written["t10k-labels-idx1-ubyte"].long())
    # a second module finds the files and asks the network for nothing
    MNISTDataModule(str(root), 10, 8, 0, MEAN, STD, download=True, mirrors=[dead_url()], md5={}).setup()
    assert len(mirror.requests) == 3 * len(GZ)


def cifar_archive(www: Path, staging: Path, classes: int) -> tuple[str, list[int]]:
    """Write a tiny CIFAR tree to ``staging`` and pack it as the published archive into ``www``."""
    _, labels = write_cifar(staging, classes, per_batch=4, test=3)
    name = "cifar-10-python.tar.gz" if classes == 10 else "cifar-100-python.tar.gz"
    www.mkdir(parents=True, exist_ok=True)
    with tarfile.open(www / name, "w:gz") as tar:
        for path in sorted(staging.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(staging)), recursive=False)
    return name, labels


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_archive_is_downloaded_and_extracted(mirror: Mirror, tmp_path: Path, classes: int) -> None:
    name, labels = cifar_archive(mirror.directory / "kriz", tmp_path / "staging", classes)
    root = tmp_path / "root"
    cls = CIFAR10DataModule if classes == 10 else CIFAR100DataModule
    md5 = md5_of(mirror.directory / "kriz", [name])
    data = cls(
        str(root), 5, 4, 0, [0.5] * 3, [0.25] * 3, download=True, mirrors=[f"{mirror.base}/kriz"], md5=md5
    )
    data.setup()
    folder = "cifar-10-batches-py" if classes == 10 else "cifar-100-python"
    expected = sorted(p.name for p in (tmp_path / "staging" / folder).iterdir())
    assert sorted(p.name for p in (root / folder).iterdir()) == expected
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [folder, name]
    )  # torchvision keeps the archive too
    train_labels = torch.cat([data.split("train")[1], data.split("val")[1]])
    assert sorted(train_labels.tolist()) == sorted(labels) and data.split("test")[0].shape == (3, 3, 32, 32)


def test_md5_mismatch_is_one_line_and_leaves_no_file(mirror: Mirror, tmp_path: Path) -> None:
    write_mnist(mirror.directory / "mnist", train=20, test=5)
    md5 = md5_of(mirror.directory / "mnist", GZ)
    actual = md5["train-labels-idx1-ubyte.gz"]
    md5["train-labels-idx1-ubyte.gz"] = "0" * 32
    root = tmp_path / "root"
    with pytest.raises(ConfigError) as caught:
        fetch(root / "MNIST" / "raw", md5, [f"{mirror.base}/mnist/"])
    assert str(caught.value) == (
        f"lth: download of {mirror.base}/mnist/train-labels-idx1-ubyte.gz has md5 {actual}, "
        f"expected {'0' * 32} (data.md5)"
    )
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == ["train-images-idx3-ubyte.gz"]
    assert leftovers(root) == []


def test_all_mirrors_dead_is_one_line_naming_file_urls_and_directory(mirror: Mirror, tmp_path: Path) -> None:
    dead, missing = dead_url(), f"{mirror.base}/missing/"
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(ConfigError) as caught:
        MNISTDataModule(
            str(tmp_path), 10, 8, 0, MEAN, STD, download=True, mirrors=[dead, missing], md5={GZ[0]: "0" * 32}
        ).setup()
    assert str(caught.value) == (
        f"lth: download of {GZ[0]} failed from {dead}{GZ[0]} (Connection refused), {missing}{GZ[0]} (HTTP 404); "
        f"put {GZ[0]} (md5 {'0' * 32}) into {raw} by hand and run again"
    )
    assert list(raw.iterdir()) == []


@pytest.mark.parametrize(
    "member",
    [tarfile.TarInfo("../escaped"), tarfile.TarInfo("cifar-10-batches-py/link")],
    ids=["dotdot", "link"],
)
def test_archive_members_outside_the_root_are_refused(mirror: Mirror, tmp_path: Path, member) -> None:
    mirror.directory.mkdir()
    archive = mirror.directory / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if member.name.endswith("link"):
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member)
        else:
            member.size = 5
            tar.addfile(member, io.BytesIO(b"owned"))
    root = tmp_path / "data" / "root"
    with pytest.raises(ConfigError, match=r"^lth: refusing to extract .*cifar-10-python.tar.gz: ") as caught:
        fetch(root, md5_of(mirror.directory, [archive.name]), [mirror.base])
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "data" / "escaped").exists()
    assert sorted(p.name for p in root.iterdir()) == [archive.name]  # nothing extracted, no temp dir left


def test_absolute_member_paths_land_inside_the_root(mirror: Mirror, tmp_path: Path) -> None:
    mirror.directory.mkdir()
    archive, outside = mirror.directory / "cifar-10-python.tar.gz", tmp_path / "outside"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo(str(outside))
        member.size = 5
        tar.addfile(member, io.BytesIO(b"owned"))
    root = tmp_path / "root"
    fetch(root, md5_of(mirror.directory, [archive.name]), [mirror.base])
    assert not outside.exists() and (root / str(outside).lstrip("/")).read_bytes() == b"owned"


def test_md5_that_misses_a_dataset_file_is_one_line_after_the_download(
    mirror: Mirror, tmp_path: Path
) -> None:
    write_mnist(mirror.directory / "mnist", train=20, test=5)
    md5 = md5_of(mirror.directory / "mnist", GZ[:3])
    data = MNISTDataModule(
        str(tmp_path), 10, 8, 0, MEAN, STD, download=True, mirrors=[f"{mirror.base}/mnist/"], md5=md5
    )
    with pytest.raises(ConfigError) as caught:
        data.setup()
    assert str(caught.value).startswith(
        f"lth: data not found after download: {tmp_path / 'MNIST' / 'raw'} or"
    )
    assert str(caught.value).endswith("data.md5 names " + ", ".join(GZ[:3]))


def test_file_names_in_md5_must_stay_in_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.md5 key '../x'; allowed: plain file names"):
        fetch(tmp_path, {"../x": "0" * 32}, ["http://127.0.0.1:9/"])


def test_dead_mirror_exits_2_from_the_cli(mirror: Mirror, lth_cli, tmp_path: Path) -> None:
    proc = lth_cli(
        "data=mnist",
        "data.download=true",
        f"data.root={tmp_path / 'data'}",
        f"data.mirrors=[{dead_url()}]",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lth: download of {GZ[0]} failed from http://127.0.0.1:"), proc.stderr[-3000:]
    assert last.endswith(f"into {tmp_path / 'data' / 'MNIST' / 'raw'} by hand and run again")
    assert not (tmp_path / "run" / "DONE").exists()


def test_a_lottery_downloads_its_data_given_mirrors_and_md5s_as_overrides(
    mirror: Mirror, make_cfg, tmp_path
) -> None:
    write_mnist(mirror.directory / "mnist", train=100, test=20)
    md5 = md5_of(mirror.directory / "mnist", GZ)
    root = tmp_path / "data"
    cfg = make_cfg(
        "data=mnist",
        "data.download=true",
        f"data.root={root}",
        f"data.mirrors=[{dead_url()},{mirror.base}/mnist/]",
        "data.md5={" + ",".join(f"{k}:{v}" for k, v in md5.items()) + "}",
        "data.val_size=20",
        "train.batch_size=16",
    )
    records = run(cfg)
    assert md5_of(root / "MNIST" / "raw", GZ) == md5
    assert [r["level"] for r in records] == [0, 1, 2] and Path(cfg.paths.output_dir, "DONE").exists()
