"""An unmodified OpenTelemetry-instrumented program: it only knows
OTEL_EXPORTER_OTLP_ENDPOINT (and OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc).
It records a GenAI chat span, a tool span under an agent span, and a failed chat, then
exits (the SDK flushes on shutdown)."""
import os

from opentelemetry import trace

if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

provider = TracerProvider(resource=Resource.create({"service.name": "python-agent"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("interop")

with tracer.start_as_current_span("invoke_agent helper") as agent:
    agent.set_attribute("gen_ai.operation.name", "invoke_agent")
    agent.set_attribute("gen_ai.conversation.id", "py-conversation")
    with tracer.start_as_current_span("chat gpt-5") as chat:
        chat.set_attribute("gen_ai.operation.name", "chat")
        chat.set_attribute("gen_ai.provider.name", "openai")
        chat.set_attribute("gen_ai.request.model", "gpt-5")
        chat.set_attribute("gen_ai.usage.input_tokens", 1200)
        chat.set_attribute("gen_ai.usage.cache_read.input_tokens", 1000)
        chat.set_attribute("gen_ai.usage.output_tokens", 90)
        chat.set_attribute("gen_ai.conversation.id", "py-conversation")
    with tracer.start_as_current_span("execute_tool search") as tool:
        tool.set_attribute("gen_ai.operation.name", "execute_tool")
        tool.set_attribute("gen_ai.tool.name", "search")
        tool.set_attribute("gen_ai.conversation.id", "py-conversation")
    with tracer.start_as_current_span("chat gpt-5") as failed:
        failed.set_attribute("gen_ai.operation.name", "chat")
        failed.set_attribute("gen_ai.request.model", "gpt-5")
        failed.set_attribute("gen_ai.conversation.id", "py-conversation")
        failed.set_status(Status(StatusCode.ERROR, "rate limited"))

provider.shutdown()
