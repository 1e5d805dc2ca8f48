# The image the compose services run: stem_pg installed from this checkout.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY stem_pg ./stem_pg
COPY sql ./sql
COPY migrations ./migrations
RUN pip install --no-cache-dir '.[dashboard]' && rm -rf /app/stem_pg /app/sql /app/migrations
# Your tasks: mount or copy your package here and point STEM_APP at it.
ENV STEM_APP=stem_pg.dev.demo_app:app
ENTRYPOINT ["stem"]
