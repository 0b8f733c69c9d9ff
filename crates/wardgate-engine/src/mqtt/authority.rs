//! Command authority for MQTT command topics: signatures, replay and budgets.
