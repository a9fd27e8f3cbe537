"""The knowledge base: hybrid retrieval (tantivy BM25 + faiss vectors) as MCP tools and resources."""
