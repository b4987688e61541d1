"""Smoke tests of the real-service harness (tests/services/fixtures.py): PostgreSQL and HDFS, no mocks."""

import hashlib
import json
import os

import pytest
import requests
import sqlalchemy as sa
from hdfs.util import HdfsError

from tests.services.fixtures import airflow_conn_env


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- PostgreSQL --------------------------------------------------------------------------------------------------


def test_postgres_url_is_psycopg3_on_loopback(postgres_server, postgres_url):
    assert postgres_server.url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/postgres"
    assert postgres_server.host == "127.0.0.1"
    url = sa.make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.username) == ("127.0.0.1", postgres_server.port, "postgres")
    assert url.database != "postgres"


def test_postgres_create_insert_select(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        meta = sa.MetaData()
        models = sa.Table(
            "models",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(64), nullable=False, unique=True),
            sa.Column("metrics", sa.JSON),
        )
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                models.insert(), [{"name": "ett-lstm", "metrics": {"mae": 0.5}}, {"name": "ett-gru", "metrics": None}]
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.select(models.c.name, models.c.metrics).order_by(models.c.name)).all()
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            fsync = conn.execute(sa.text("SHOW fsync")).scalar_one()
        assert [tuple(r) for r in rows] == [("ett-gru", None), ("ett-lstm", {"mae": 0.5})]
        assert version and fsync == "off"
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(models.insert(), [{"name": "ett-gru", "metrics": None}])
    finally:
        engine.dispose()


def test_postgres_each_test_gets_a_fresh_database(postgres_server, postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
        assert tables == 0  # the table of the previous test is not here
    finally:
        engine.dispose()
    extra = postgres_server.create_database("harness_extra_db")
    try:
        assert extra.endswith(f":{postgres_server.port}/harness_extra_db")
        engine = sa.create_engine(extra)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "harness_extra_db"
        engine.dispose()
    finally:
        postgres_server.drop_database("harness_extra_db")


def test_postgres_stop_then_start(postgres_server, postgres_url):
    engine = sa.create_engine(postgres_url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (42)"))

        postgres_server.stop()
        assert not postgres_server.is_running()
        with pytest.raises(sa.exc.OperationalError):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        postgres_server.start()
        assert postgres_server.is_running()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM t")).scalar_one() == 42
    finally:
        engine.dispose()


# -- HDFS --------------------------------------------------------------------------------------------------------


def test_hdfs_write_read_checksum_list(hdfs_cluster, hdfs_test_dir):
    assert hdfs_cluster.namenode_url == f"http://127.0.0.1:{hdfs_cluster.port}"
    client = hdfs_cluster.client()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    client.makedirs(hdfs_test_dir)
    client.write(f"{hdfs_test_dir}/model.bin", data=payload)
    client.write(f"{hdfs_test_dir}/meta.json", data=json.dumps({"v": 1}), encoding="utf-8")

    with client.read(f"{hdfs_test_dir}/model.bin") as reader:
        back = reader.read()
    assert _sha256(back) == _sha256(payload)
    assert client.status(f"{hdfs_test_dir}/model.bin")["length"] == len(payload)
    assert sorted(client.list(hdfs_test_dir)) == ["meta.json", "model.bin"]
    with client.read(f"{hdfs_test_dir}/meta.json", encoding="utf-8") as reader:
        assert json.load(reader) == {"v": 1}


def test_hdfs_datanode_redirect_is_reachable_from_here(hdfs_cluster, hdfs_test_dir):
    """WebHDFS CREATE redirects to the DataNode; its address must resolve and be reachable from this process."""
    resp = requests.put(
        f"{hdfs_cluster.webhdfs_url}{hdfs_test_dir}/r.txt",
        params={"op": "CREATE", "user.name": hdfs_cluster.user},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code == 307
    location = resp.headers["Location"]
    assert location.startswith("http://127.0.0.1:")
    put = requests.put(location, data=b"hello", timeout=30)
    assert put.status_code == 201
    with hdfs_cluster.client().read(f"{hdfs_test_dir}/r.txt") as reader:
        assert reader.read() == b"hello"


def test_hdfs_upload_download_roundtrip(hdfs_cluster, hdfs_test_dir, tmp_path):
    src = tmp_path / "model.keras"
    src.write_bytes(os.urandom(100_000))
    client = hdfs_cluster.client()
    client.upload(f"{hdfs_test_dir}/v1/model.keras", str(src))
    dst = tmp_path / "back.keras"
    client.download(f"{hdfs_test_dir}/v1/model.keras", str(dst))
    assert _sha256(dst.read_bytes()) == _sha256(src.read_bytes())


def test_hdfs_safemode_blocks_writes(hdfs_cluster, hdfs_test_dir):
    client = hdfs_cluster.client()
    client.write(f"{hdfs_test_dir}/before.txt", data=b"ok")

    hdfs_cluster.set_safemode(True)
    assert hdfs_cluster.in_safemode()
    with pytest.raises(HdfsError, match=r"[Ss]afe ?mode"):
        client.write(f"{hdfs_test_dir}/during.txt", data=b"nope")
    with pytest.raises(HdfsError, match=r"[Ss]afe ?mode"):
        client.makedirs(f"{hdfs_test_dir}/sub")
    with client.read(f"{hdfs_test_dir}/before.txt") as reader:  # reads still work
        assert reader.read() == b"ok"

    hdfs_cluster.set_safemode(False)
    assert not hdfs_cluster.in_safemode()
    client.write(f"{hdfs_test_dir}/after.txt", data=b"ok")
    assert sorted(client.list(hdfs_test_dir)) == ["after.txt", "before.txt"]


def test_hdfs_stop_then_start_keeps_data(hdfs_cluster, hdfs_test_dir):
    client = hdfs_cluster.client()
    client.write(f"{hdfs_test_dir}/kept.bin", data=b"x" * 1000)

    hdfs_cluster.stop()
    assert not hdfs_cluster.is_running()
    with pytest.raises(requests.exceptions.ConnectionError):
        client.status("/")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.write(f"{hdfs_test_dir}/lost.bin", data=b"y")

    hdfs_cluster.start()
    assert hdfs_cluster.is_running()
    with client.read(f"{hdfs_test_dir}/kept.bin") as reader:
        assert reader.read() == b"x" * 1000
    client.write(f"{hdfs_test_dir}/new.bin", data=b"z")
    assert sorted(client.list(hdfs_test_dir)) == ["kept.bin", "new.bin"]


def test_airflow_webhdfs_hook_reaches_the_cluster(hdfs_cluster, hdfs_test_dir, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WEBHDFS_DEFAULT", airflow_conn_env(hdfs_cluster))
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    hdfs_cluster.client().write(f"{hdfs_test_dir}/via-hook.txt", data=b"airflow")
    hook = WebHDFSHook()
    assert hook.check_for_path(f"{hdfs_test_dir}/via-hook.txt")
    assert not hook.check_for_path(f"{hdfs_test_dir}/missing.txt")
    assert hook.read_file(f"{hdfs_test_dir}/via-hook.txt") == b"airflow"
