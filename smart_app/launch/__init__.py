"""SMART App Launch: the launch and callback routes (``views``), the protocol steps
(``smart``) and the app's client key (``keys``)."""
