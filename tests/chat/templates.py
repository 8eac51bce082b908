"""Chat templates as Jinja text, quoted where a model's own file is not vendored: Qwen2.5-Instruct's
without its tool branches, Phi-3.5-mini-instruct's and Mistral-Small-24B-Instruct-2501's. Shared by render_templates.py (which renders it) and
tests/ref/make_hf.py (which writes it into random-weight Qwen2 checkpoints); no imports, so
either runs with a bare python3."""

QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")

# microsoft/Phi-3.5-mini-instruct, tokenizer_config.json "chat_template" (MIT licence), verbatim;
# Phi-3-mini-4k-instruct's differs only in writing an empty system message.
PHI35 = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")

# mistralai/Mistral-Small-24B-Instruct-2501, tokenizer_config.json "chat_template" (Apache-2.0),
# verbatim: the Mistral v7 (tekken) format, its default system prompt dated by strftime_now.
MISTRAL_V7 = (
    "{%- set today = strftime_now(\"%Y-%m-%d\") %}\n"
    "{%- set default_system_message = \"You are Mistral Small 3, a Large Language Model (LLM) "
    "created by Mistral AI, a French startup headquartered in Paris.\\nYour knowledge base was "
    "last updated on 2023-10-01. The current date is \" + today + \".\\n\\nWhen you're not sure "
    "about some information, you say that you don't have the information and don't make up "
    "anything.\\nIf the user's question is not clear, ambiguous, or does not provide enough "
    "context for you to accurately answer the question, you do not try to answer it right away "
    "and you rather ask the user to clarify their request (e.g. \\\"What are some good "
    "restaurants around me?\\\" => \\\"Where are you?\\\" or \\\"When is the next flight to "
    "Tokyo\\\" => \\\"Where do you travel from?\\\")\" %}\n"
    "\n"
    "{{- bos_token }}\n"
    "\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = default_system_message %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}\n"
    "\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {{- '[INST]' + message['content'] + '[/INST]' }}\n"
    "    {%- elif message['role'] == 'system' %}\n"
    "        {{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- message['content'] + eos_token }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user, system and assistant roles are supported!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}")
