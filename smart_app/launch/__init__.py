"""SMART App Launch in the app: the launch and callback routes (``views``). The protocol
itself is ``symfhir.smart``."""
