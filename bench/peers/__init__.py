"""Side by side with NautilusTrader: the same resting emulated stops through its OrderEmulator and through posmon."""
