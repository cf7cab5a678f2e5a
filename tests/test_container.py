"""The Docker image, really built and run (with podman), against the test PostgreSQL on the host network."""

from __future__ import annotations

import time
import uuid

import pytest

from support import container
from support.db import row_count

# One xdist worker runs them all (`make test` uses --dist loadgroup), so the image is built once.
pytestmark = [pytest.mark.container, pytest.mark.xdist_group("container")]


@pytest.fixture(scope="session")
def built():
    built = container.build_image()
    yield built
    built.clean_up(keep=container.keep_images())


@pytest.fixture(scope="session")
def image(built) -> str:
    return built.name


@pytest.fixture
def container_env(db, database_url, schema) -> dict[str, str]:
    """What a user passes to the container: the database and its schema."""
    return {"DATABASE_URL": database_url, "DB_SCHEMA": schema, "ETL_DB_WAIT_SECONDS": "5"}


def test_the_image_runs_as_a_non_root_user_without_a_compiler(image):
    result = container.run(image, "-c", "id -u; command -v gcc cc || echo no-compiler",
                           options=("--entrypoint=/bin/sh",))
    uid, compiler = result.stdout.split()
    assert uid != "0"
    assert compiler == "no-compiler"


def test_a_missing_database_setting_exits_2_naming_the_variable(image):
    result = container.run(image, "etl", "runs")
    assert result.returncode == 2
    assert "DATABASE_URL is required" in result.stderr


def test_the_worker_without_a_broker_setting_exits_2_naming_the_variable(image, container_env):
    result = container.run(image, "etl", "worker", env=container_env)
    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is required" in result.stderr


def test_an_unreachable_database_makes_the_entrypoint_give_up_after_its_timeout(image):
    started = time.monotonic()
    result = container.run(image, "etl", "runs",
                           env={"DATABASE_URL": "postgresql://etl@127.0.0.1:1/finance", "ETL_DB_WAIT_SECONDS": "2"})
    assert result.returncode == 1
    assert "gave up: the database did not answer within 2 s (ETL_DB_WAIT_SECONDS)" in result.stderr
    assert time.monotonic() - started < 60


def test_the_container_applies_migrations_and_runs_a_job_with_its_exit_code(image, container_env, db):
    done = container.run(image, "etl", "generate_mock_transactions", "--accounts", "1", "--months", "2",
                         "--seed", "3", env=container_env)
    assert done.returncode == 0, done.stderr
    assert "applied" in done.stdout or "up to date" in done.stdout
    assert row_count(db, "etl_job_runs", "job = 'generate_mock_transactions' AND status = 'success'") == 1
    assert row_count(db, "transactions") > 0

    refused = container.run(image, "etl", "generate_mock_transactions", "--months", "0", env=container_env)
    assert refused.returncode == 2
    assert "--months" in refused.stderr


def test_the_healthcheck_passes_on_a_live_database_and_fails_on_a_stuck_run(image, container_env, db):
    healthy = container.run(image, options=("--entrypoint=healthcheck",), env=container_env)
    assert healthy.returncode == 0, healthy.stderr
    with db.cursor() as cur:
        cur.execute("INSERT INTO etl_job_runs (job, params, status, started_at) "
                    "VALUES ('fetch_market_data', '{}', 'running', now() - interval '4 hours')")
    stuck = container.run(image, options=("--entrypoint=healthcheck",), env=container_env)
    assert stuck.returncode == 1
    assert "fetch_market_data run" in stuck.stderr and "ETL_HEALTH_MAX_RUN_MINUTES" in stuck.stderr


def test_the_images_crontab_is_valid_for_its_scheduler(image):
    result = container.run(image, "-c", "python3 /usr/local/lib/etl/crontab_to_yacron.py /etc/etl/crontab "
                                        "> /tmp/schedule.yaml && yacron --validate-config -c /tmp/schedule.yaml",
                           options=("--entrypoint=/bin/sh",))
    assert result.returncode == 0, result.stderr
    assert "Configuration is valid" in result.stdout + result.stderr


def test_the_scheduler_runs_crontab_jobs_with_the_container_environment_and_logs_them(
        image, container_env, db, tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_text('* * * * * echo "scheduled job sees GREETING=$GREETING"\n'
                       "* * * * * etl-cron runs --limit 1\n")
    crontab.chmod(0o644)
    name = f"etl-scheduler-{uuid.uuid4().hex[:8]}"
    flags = [f"--env={k}={v}" for k, v in {**container_env, "GREETING": "from-the-container"}.items()]
    container.podman("run", "-d", "--name", name, "--pull=never", "--network=host", *flags,
                     "-v", f"{crontab}:/etc/etl/crontab:ro", image, check=True)
    try:
        logs = wait_for_log(name, ["scheduled job sees GREETING=from-the-container", "[runs stdout] run"],
                            timeout=75)
        assert "scheduler: running 2 job(s)" in logs
        container.podman("stop", "-t", "15", name, check=True, timeout=30)
        state = container.podman("inspect", name, "--format", "{{.State.ExitCode}}", check=True)
        assert state.stdout.strip() == "0"
    finally:
        container.podman("rm", "-f", name)


def test_the_scheduler_runs_the_crontab_named_by_etl_crontab_at_run_time(image, container_env, db, tmp_path):
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    (schedules / "crontab").write_text("* * * * * echo \"the operator's own schedule ran\"\n")
    schedules.chmod(0o755)
    (schedules / "crontab").chmod(0o644)
    name = f"etl-scheduler-{uuid.uuid4().hex[:8]}"
    flags = [f"--env={k}={v}" for k, v in {**container_env, "ETL_CRONTAB": "/schedules/crontab"}.items()]
    container.podman("run", "-d", "--name", name, "--pull=never", "--network=host", *flags,
                     "-v", f"{schedules}:/schedules:ro", image, check=True)
    try:
        logs = wait_for_log(name, ["the operator's own schedule ran"], timeout=75)
        assert "scheduler: running 1 job(s) from /schedules/crontab" in logs
    finally:
        container.podman("rm", "-f", name)


def wait_for_log(name: str, needles: list[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        result = container.podman("logs", name)
        logs = result.stdout + result.stderr
        if all(needle in logs for needle in needles):
            return logs
        time.sleep(1)
    raise AssertionError(f"the container log has not shown {needles} after {timeout} s:\n{logs[-3000:]}")


def test_docker_stop_passes_sigterm_to_a_running_scheduled_job_which_stops_at_its_next_asset(
        image, container_env, db, fake_api, tmp_path):
    from support.faults import backfill_argv, wait_for
    from support.yahoo_server import YahooServer

    YahooServer(fake_api)
    crontab = tmp_path / "crontab"
    symbols = [f"D{i}:STOCK" for i in range(60)]
    crontab.write_text("* * * * * etl-cron " + " ".join(backfill_argv(symbols)) + "\n")
    crontab.chmod(0o644)
    name = f"etl-scheduler-{uuid.uuid4().hex[:8]}"
    env = {**container_env, "YAHOO_BASE_URL": fake_api.base_url, "PROVIDER_RATE_LIMITS": "yahoo=60"}
    flags = [f"--env={k}={v}" for k, v in env.items()]
    container.podman("run", "-d", "--name", name, "--pull=never", "--network=host", *flags,
                     "-v", f"{crontab}:/etc/etl/crontab:ro", image, check=True)
    try:
        wait_for(lambda: row_count(db, "etl_job_runs", "status = 'running' AND symbols_ok >= 1"), 100,
                 "the scheduled backfill to commit an asset", interval=0.5)
        stopping = time.monotonic()
        container.podman("stop", "-t", "20", name, check=True, timeout=40)
        assert time.monotonic() - stopping < 10
        logs = container.podman("logs", name)
        assert "stopped by SIGTERM" in logs.stdout + logs.stderr, (logs.stdout + logs.stderr)[-3000:]
        assert row_count(db, "etl_job_runs", "status = 'running'") == 0
        assert row_count(db, "etl_job_runs", "status = 'partial'") == 1
    finally:
        container.podman("rm", "-f", name)


# Last in this file: it removes the image the tests above share.
def test_the_teardown_leaves_no_test_image_or_dangling_layer_only_the_local_base(built):
    keep = container.keep_images()
    built.clean_up(keep=keep)
    assert not container.CONF.exists()
    assert container.image_exists(container.BASE_IMAGE)
    if keep:
        assert container.image_exists(built.name)
    else:
        assert not container.image_exists(built.name)
        assert not built.left_dangling & container.dangling_images()
