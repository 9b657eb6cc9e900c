"""Model providers: one interface (`base.ModelProvider`), one module per wire format.

`build_provider(settings)` picks the module by `settings.wire_format`. A provider is built from
one `ProviderSettings` (wire format, base URL, key, default model, limits): the shape a named
connection of the configuration maps onto.
"""

from __future__ import annotations

from agent_service.providers.base import ANTHROPIC, OPENAI, ModelProvider, ProviderSettings


def build_provider(settings: ProviderSettings) -> ModelProvider:
    """The provider for the settings' wire format (`openai` or `anthropic`)."""
    if settings.wire_format == ANTHROPIC:
        # Imported here: the SDK takes a while to import and only this format needs it.
        from agent_service.providers.anthropic_messages import AnthropicMessagesProvider

        return AnthropicMessagesProvider(settings)
    if settings.wire_format == OPENAI:
        from agent_service.providers.openai_chat import OpenAIChatProvider

        return OpenAIChatProvider(settings)
    raise ValueError(f"unknown wire format {settings.wire_format!r}; expected openai or anthropic")
