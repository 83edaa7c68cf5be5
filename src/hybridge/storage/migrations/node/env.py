from hybridge.storage.alembic_env import run

run()
