"""What the version page says a metric means: the names train_lstm registers, also per forecast step."""

from airflow_amml.ui.views import metric_help


def test_every_metric_train_lstm_registers_for_a_horizon_model_is_explained():
    assert "every forecast window and step" in metric_help("holdout_mae")
    assert metric_help("holdout_mae_h24") == "`holdout_mae` of the forecasts 24 step(s) ahead"
    assert metric_help("holdout_mse_scaled_h1") == "`holdout_mse_scaled` of the forecasts 1 step(s) ahead"
    assert "scaler's units" in metric_help("holdout_mae_scaled")
    assert metric_help("champion_holdout_mae").startswith("MAE of the version @champion")
    assert metric_help("holdout_mae_hx") is None and metric_help("no_such_metric") is None
