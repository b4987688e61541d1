"""ETTh1 ships with the package (verbatim, CC BY-ND 4.0), and `source id="ett"` picks its copy in a fixed order:
``$AMML_ETT_PATH``, the cache, the shipped copy, a download."""

import hashlib

import pytest

from airflow_amml.components import catalog
from airflow_amml.run_config import RunConfig
from airflow_amml.runtime.errors import PipelineError

# sha256 of ETT-small/ETTh1.csv in github.com/zhouhaoyi/ETDataset: the shipped copy is unmodified
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"


def chosen():
    """The copy `source id="ett"` reads, configured by the environment as it is now."""
    return catalog._ett_path(RunConfig.from_environment())


def test_the_shipped_copy_is_verbatim_and_carries_its_license():
    assert hashlib.sha256(catalog.SHIPPED_ETT.read_bytes()).hexdigest() == ETTH1_SHA256
    folder = catalog.SHIPPED_ETT.parent
    assert "Attribution-NoDerivatives 4.0" in (folder / "LICENSE").read_text()
    assert "github.com/zhouhaoyi/ETDataset" in (folder / "README.md").read_text()


@pytest.fixture
def no_explicit_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("AMML_ETT_PATH", raising=False)
    monkeypatch.setenv("AMML_CACHE", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise AssertionError("no download while a copy is at hand")

    monkeypatch.setattr(catalog.urllib.request, "urlretrieve", offline)
    return tmp_path / "cache" / "ETTh1.csv"


def test_explicit_path_comes_first(monkeypatch, tmp_path, no_explicit_copy):
    mine = tmp_path / "mine.csv"
    mine.write_text("date,OT\n2016-07-01 00:00:00,1.0\n")
    no_explicit_copy.parent.mkdir(parents=True)
    no_explicit_copy.write_text("date,OT\n")
    monkeypatch.setenv("AMML_ETT_PATH", str(mine))
    assert chosen() == mine


def test_then_the_cache_then_the_shipped_copy(no_explicit_copy):
    assert chosen() == catalog.SHIPPED_ETT, "offline, with an empty cache: the shipped copy"
    no_explicit_copy.parent.mkdir(parents=True)
    no_explicit_copy.write_text("date,OT\n")
    assert chosen() == no_explicit_copy


def test_download_only_when_the_package_lacks_its_copy(monkeypatch, tmp_path, no_explicit_copy):
    # The network is out of reach here, so urlretrieve is replaced by a copy from disk (a stand-in, not a test
    # of the download itself): what is checked is that the download lands in the cache, atomically.
    monkeypatch.setattr(catalog, "SHIPPED_ETT", tmp_path / "not-installed" / "ETTh1.csv")
    fetched = []

    def fake_download(url, target):
        fetched.append(url)
        target.write_bytes(b"date,OT\n")

    monkeypatch.setattr(catalog.urllib.request, "urlretrieve", fake_download)
    assert chosen() == no_explicit_copy and no_explicit_copy.read_bytes() == b"date,OT\n"
    assert fetched == [catalog.ETT_URL]
    assert not no_explicit_copy.with_suffix(".part").exists()


def test_an_explicit_path_that_is_not_a_file_says_how_to_fall_back(monkeypatch, tmp_path):
    monkeypatch.setenv("AMML_ETT_PATH", str(tmp_path / "missing.csv"))
    with pytest.raises(PipelineError) as info:
        chosen()
    assert "missing.csv" in str(info.value) and "unset AMML_ETT_PATH" in str(info.value)
