-- The model registry's database, next to Airflow's own.
CREATE USER amml WITH PASSWORD 'amml';
CREATE DATABASE amml OWNER amml;
