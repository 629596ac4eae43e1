"""Sharing a client's records with the client's physician or a new provider (Flask-free).

The consent gate and the scopes decide what may leave; the package builds it; SMART Health
Links, push and transfer send it. The app, the link service, the command line and jobs only
call these modules.
"""
